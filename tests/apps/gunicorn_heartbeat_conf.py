"""A gunicorn config that installs bgtask's hook (used by the offload server tests)."""

from bgtask.gunicorn import post_worker_init  # noqa: F401 (a gunicorn hook)
