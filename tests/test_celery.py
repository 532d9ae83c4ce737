"""What only the Celery backend does; the scenarios it shares with RQ are in test_engines.py."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest

from bgtask import BackgroundTask, BackgroundTasks
from bgtask._job import PAYLOAD_VERSION, JobRefused
from bgtask._remote import encode
from bgtask.celery import TASK_NAME, CeleryBackend

from .deployments import unreachable_app
from .engines import tasks_run
from .remote_tasks import record
from .servers import DEADLINE, ROOT

if TYPE_CHECKING:
    from pathlib import Path


def test_an_object_json_cannot_carry_is_refused_at_check() -> None:
    """JSON, Celery's default, carries no arbitrary object."""
    with pytest.raises(TypeError, match=r"cannot be serialized with Celery's task_serializer"):
        CeleryBackend(unreachable_app(), tasks=[print]).check(BackgroundTask(print, object()))


def test_the_apps_configured_serializer_decides_what_arguments_pass() -> None:
    """With task_serializer="pickle" a set passes; a lock still does not."""
    backend = CeleryBackend(
        unreachable_app(task_serializer="pickle", accept_content=["pickle", "json"]),
        tasks=[print],
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


def test_a_worker_app_without_a_backend_declaring_tasks_refuses_every_job(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """``include=["bgtask.celery"]`` registers the task, but only declared tasks ever run."""
    app = unreachable_app()
    payload = {"bgtask": PAYLOAD_VERSION, "declared": True, "continue_on_error": False, "tasks": []}
    with pytest.raises(JobRefused, match="no CeleryBackend declares tasks on this worker's app"):
        app.tasks[TASK_NAME].apply(args=[payload], throw=True)


def test_the_task_runs_the_functions_declared_on_its_own_app(tmp_path: Path) -> None:
    """The registry is the app's: another app's declarations do not count."""
    events = tmp_path / "events.jsonl"
    declaring, other = unreachable_app(), unreachable_app()
    CeleryBackend(declaring, tasks=[record])
    CeleryBackend(other)
    payload = encode(BackgroundTasks([BackgroundTask(record, str(events), "a")]), declared=True)
    declaring.tasks[TASK_NAME].apply(args=[payload], throw=True)
    assert [e["tag"] for e in tasks_run(events)] == ["a"]
    with pytest.raises(JobRefused, match="not declared on this worker"):
        other.tasks[TASK_NAME].apply(args=[payload], throw=True)
