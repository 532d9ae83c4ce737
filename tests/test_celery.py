"""What only the Celery backend does; the scenarios it shares with RQ are in test_engines.py."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from bgtask import BackgroundTask
from bgtask.celery import TASK_NAME, CeleryBackend

from .deployments import unreachable_app
from .servers import DEADLINE, ROOT


def test_an_object_json_cannot_carry_is_refused_at_check() -> None:
    """JSON, Celery's default, carries no arbitrary object."""
    with pytest.raises(TypeError, match=r"cannot be serialized with Celery's task_serializer"):
        CeleryBackend(unreachable_app()).check(BackgroundTask(print, object()))


def test_the_apps_configured_serializer_decides_what_arguments_pass() -> None:
    """With task_serializer="pickle" a set passes; a lock still does not."""
    backend = CeleryBackend(
        unreachable_app(task_serializer="pickle", accept_content=["pickle", "json"])
    )
    backend.check(BackgroundTask(print, {"a", "b"}))
    with pytest.raises(TypeError, match=r"task_serializer \(pickle\)"):
        backend.check(BackgroundTask(print, threading.Lock()))


def test_building_a_backend_registers_the_task_on_the_app() -> None:
    """The worker that imports the module building the backend has bgtask's task."""
    app = unreachable_app()
    CeleryBackend(app)
    assert TASK_NAME in app.tasks


def test_a_worker_app_gets_the_task_by_including_bgtask_celery() -> None:
    """``Celery(include=["bgtask.celery"])`` registers it without building a backend."""
    code = (
        "from celery import Celery\n"
        "app = Celery(include=['bgtask.celery'])\n"
        "app.loader.import_default_modules()\n"
        f"assert {TASK_NAME!r} in app.tasks\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=DEADLINE)
