"""gunicorn settings for ``make demo``: gthread workers on 127.0.0.1:8000."""

import os
import shutil
import tempfile

# Prometheus' multiprocess mode, so /metrics sums both workers: a fresh directory per run,
# set here, in the master, before prometheus_client is imported (below) and the workers
# are forked; removed at exit.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bgtask-demo-metrics-")
    os.environ["BGTASK_DEMO_METRICS_OWNED"] = "1"

from wsgi_demo.events import ENVIRONMENT_VARIABLE, new_log

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


def on_starting(server: object) -> None:
    """A fresh event log for this run, which the workers inherit (unless one was given)."""
    if not os.environ.get(ENVIRONMENT_VARIABLE):
        os.environ[ENVIRONMENT_VARIABLE] = new_log()
        os.environ["BGTASK_DEMO_EVENTS_OWNED"] = "1"


def on_exit(server: object) -> None:
    """Remove this run's event log and metrics, if this run created them."""
    if os.environ.pop("BGTASK_DEMO_EVENTS_OWNED", None):
        os.unlink(os.environ[ENVIRONMENT_VARIABLE])
    if os.environ.pop("BGTASK_DEMO_METRICS_OWNED", None):
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
