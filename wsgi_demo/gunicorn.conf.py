"""gunicorn settings for ``make demo``: gthread workers on 127.0.0.1:8000."""

import os
import tempfile

# Prometheus' multiprocess mode, so /metrics sums both workers: a fresh directory per start,
# set here, in the master, before the workers are forked.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bgtask-demo-metrics-"))

bind = "127.0.0.1:8000"
worker_class = "gthread"
workers = 2
threads = 4
# bgtask drains async tasks at exit for up to 10 s: keep the graceful timeout above that.
graceful_timeout = 15
accesslog = "-"
loglevel = "info"

# Keep the heartbeat while a restarting worker drains its tasks (see the README).
from bgtask.gunicorn import post_worker_init  # noqa: E402,F401 (a gunicorn hook)
from bgtask.prometheus import child_exit  # noqa: E402,F401 (a dead worker leaves the gauges)
