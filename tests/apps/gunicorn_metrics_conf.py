"""A gunicorn config with bgtask's hooks and Prometheus' dead-worker hook (the README's)."""

from bgtask.gunicorn import post_worker_init  # noqa: F401 (a gunicorn hook)
from bgtask.prometheus import child_exit  # noqa: F401 (a gunicorn hook)
