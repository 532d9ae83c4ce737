"""The ``django.tasks`` scenarios, in a process of its own: prints one JSON object of what
was observed (``python -m tests.apps.djangoproject.drive_tasks``), for the tests to check.

Every result enqueued is caught through Django's ``task_enqueued`` signal, in order.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djangoproject.settings")


def describe(result: Any) -> dict[str, Any]:
    """A result as the tests check it: status, times in order, value, errors."""
    times = [result.enqueued_at, result.started_at, result.finished_at]
    seen: dict[str, Any] = {
        "task": result.task.name,
        "status": str(result.status),
        "times": [t is not None for t in times],
        "ordered": all(t is not None for t in times) and times == sorted(times),
        "aware": all(t.tzinfo is not None for t in times if t is not None),
        "errors": [e.exception_class_path for e in result.errors],
        "workers": len(result.worker_ids),
        "args": result.args,
    }
    if result.status == "SUCCESSFUL":
        seen["value"] = result.return_value
    if result.errors:
        seen["traceback_tail"] = result.errors[-1].traceback.strip().splitlines()[-1]
    return seen


def main() -> None:
    import django

    django.setup()
    from django.core.exceptions import ImproperlyConfigured
    from django.test import Client, override_settings

    from bgtask import drain

    try:
        django_tasks: Any = importlib.import_module("django.tasks")
    except ImportError:
        django_tasks = importlib.import_module("django_tasks")
    base = django_tasks.__name__
    signals: Any = importlib.import_module(f"{base}.signals")
    exceptions: Any = importlib.import_module(f"{base}.exceptions")
    invalid_task = getattr(exceptions, "InvalidTask", None) or exceptions.InvalidTaskError
    default_task_backend = django_tasks.default_task_backend

    from . import jobs
    from .views import create_table

    create_table()
    enqueued: list[Any] = []

    def caught(sender: Any, task_result: Any, **extra: Any) -> None:
        enqueued.append(task_result)

    signals.task_enqueued.connect(caught, weak=False)
    seen: dict[str, Any] = {"flags": {
        name: getattr(default_task_backend, name)
        for name in ("supports_defer", "supports_async_task", "supports_get_result",
                     "supports_priority")
    }}  # fmt: skip
    client = Client(raise_request_exception=False)
    for path in (
        "/tasks/enqueue",
        "/tasks/fail",
        "/tasks/atomic",
        "/tasks/raise",
        "/tasks/aenqueue",
        "/tasks/async-fail",
        "/tasks/not-json",
    ):
        before = len(enqueued)
        response = client.get(path)
        statuses = [str(r.status) for r in enqueued[before:]]
        seen[path] = {
            "status": response.status_code,
            "at_enqueue": response.json()["statuses"] if response.status_code == 200 else [],
            "results": [describe(r) for r in enqueued[before:]],
            "found": [default_task_backend.get_result(r.id) is r for r in enqueued[before:]],
            "after_response": statuses,
        }
    client.get("/tasks/late")  # its task leaves a coroutine that enqueues after the request
    assert drain(10)
    seen["late"] = [describe(r) for r in enqueued if r.args == [9, 9]]
    # Outside a request: on the offload pool.
    outside = jobs.add.enqueue(7, 8)
    assert drain(10)
    seen["outside"] = describe(outside)
    # Django's contract: what the backend refuses.
    refused: dict[str, str] = {}
    refusals: dict[str, Callable[[], Any]] = {
        "run_after": lambda: jobs.add.using(
            run_after=datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=5)
        ),
        "priority": lambda: jobs.add.using(priority=10),
        "queue": lambda: jobs.add.using(queue_name="elsewhere"),
    }
    for name, make in refusals.items():
        try:
            make().enqueue(1, 2)
        except invalid_task as error:
            refused[name] = str(error)
    seen["refused"] = refused
    try:
        default_task_backend.get_result("nope")
    except exceptions.TaskResultDoesNotExist as error:
        seen["missing"] = str(error)
    with override_settings(TASKS={"default": {
        "BACKEND": "bgtask.django.AfterResponseBackend", "OPTIONS": {"MAX_RESULTS": 2},
    }}):  # fmt: skip
        results = [jobs.add.enqueue(i, i) for i in range(3)]
        assert drain(10)
        kept = []
        for result in results:
            try:
                kept.append(jobs.add.get_result(result.id).id == result.id)
            except exceptions.TaskResultDoesNotExist:
                kept.append(False)
        seen["bound"] = {"kept": kept, "oldest": str(results[0].status)}
    with override_settings(TASKS={"default": {
        "BACKEND": "bgtask.django.AfterResponseBackend",
        "OPTIONS": {"OUTSIDE_REQUEST": "immediate"},
    }}):  # fmt: skip
        seen["immediate"] = str(jobs.add.enqueue(1, 2).status)  # finished inside enqueue()
    for bad in ({"MAX_RESULT": 5}, {"MAX_RESULTS": -1}, {"OUTSIDE_REQUEST": "later"}):
        with override_settings(TASKS={"default": {
            "BACKEND": "bgtask.django.AfterResponseBackend", "OPTIONS": bad,
        }}):  # fmt: skip
            try:
                jobs.add.using(backend="default").enqueue(1, 2)
            except ImproperlyConfigured as error:
                seen.setdefault("improper", []).append(str(error))
    with override_settings(
        BGTASK={"BACKEND": "tests.apps.djangoproject.backends.rq"},
        TASKS={"default": {"BACKEND": "bgtask.django.AfterResponseBackend"}},
    ):
        try:
            jobs.add.using(backend="default").enqueue(1, 2)
        except ImproperlyConfigured as error:
            seen["with_another_backend"] = str(error)
    print(json.dumps(seen, default=str))


if __name__ == "__main__":
    main()
