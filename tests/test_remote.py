"""What RQ and Celery jobs share, without an engine: the payload, the run on a worker, resuming.

``encode`` is what the web process sends; ``run_payload`` is what a worker runs, here in
this process. The engines themselves are in test_rq.py and test_celery.py.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

import pytest

from bgtask import (
    BackgroundTask,
    BackgroundTaskMiddleware,
    BackgroundTasks,
    RequestTasks,
    background,
    get_background_tasks,
)
from bgtask._job import PAYLOAD_VERSION, JobRefused, run_payload
from bgtask._payload import encode
from bgtask._retry import RetryPolicy

from .apps.remote_tasks import fail, read_events, record, record_async
from .helpers.wsgi import serve, text_app

if TYPE_CHECKING:
    from pathlib import Path

    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def ran(events_file: Path) -> list[str]:
    """The tags of the tasks that ran, in order."""
    return [e["tag"] for e in read_events(events_file) if e["event"] == "task"]


def test_a_payload_names_functions_by_import_path_next_to_their_arguments(
    events_file: Path,
) -> None:
    """Plain lists, dicts and strings; a partial is unwrapped into its function."""
    batch = BackgroundTasks(
        [
            BackgroundTask(functools.partial(record, str(events_file)), "a"),
            BackgroundTasks([BackgroundTask(record_async, str(events_file), "b")]),
        ],
        continue_on_error=True,
    )
    assert encode(batch, RetryPolicy(max=2, backoff=3)) == {
        "bgtask": PAYLOAD_VERSION,
        "declared": False,
        "continue_on_error": True,
        "tasks": [
            {
                "func": "tests.apps.remote_tasks:record",
                "args": [str(events_file), "a"],
                "kwargs": {},
            },
            {
                "tasks": [
                    {
                        "func": "tests.apps.remote_tasks:record_async",
                        "args": [str(events_file), "b"],
                        "kwargs": {},
                    }
                ],
                "continue_on_error": False,
            },
        ],
        "retry_delays": [3.0, 3.0],
    }


def test_a_worker_runs_the_payload_in_order_and_records_what_succeeded(events_file: Path) -> None:
    """Sync and async tasks, nested collections: in order; their indexes end up in done."""
    batch = BackgroundTasks(
        [
            BackgroundTask(record, str(events_file), "a"),
            BackgroundTasks([BackgroundTask(record_async, str(events_file), "b")]),
            BackgroundTask(record, str(events_file), "c"),
        ]
    )
    done: set[int] = set()
    progress: list[set[int]] = []
    assert run_payload(encode(batch), done, lambda: progress.append(set(done))) == []
    assert ran(events_file) == ["a", "b", "c"]
    assert done == {0, 1, 2}
    assert progress == [{0}, {0, 1}, {0, 1, 2}]


def test_a_failure_stops_the_rest_and_a_rerun_resumes_at_the_failed_task(
    events_file: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """The first run stops at the failure; a retry skips what succeeded and runs the rest."""
    payload = encode(
        BackgroundTasks(
            [
                BackgroundTask(record, str(events_file), "a"),
                BackgroundTask(fail, str(events_file), "b"),
                BackgroundTask(record, str(events_file), "c"),
            ]
        )
    )
    done: set[int] = set()
    not_done = run_payload(payload, done)
    assert not_done == ["tests.apps.remote_tasks.fail", "tests.apps.remote_tasks.record"]
    assert ran(events_file) == ["a", "b"]
    assert "background task tests.apps.remote_tasks.fail failed" in bgtask_log.text
    assert "background task tests.apps.remote_tasks.record skipped" in bgtask_log.text

    assert run_payload(payload, done) == [
        "tests.apps.remote_tasks.fail",
        "tests.apps.remote_tasks.record",
    ]
    assert ran(events_file) == ["a", "b", "b"]  # a is not run again


def test_under_continue_on_error_a_rerun_runs_only_the_failed_tasks(events_file: Path) -> None:
    """Every task runs; a retry runs just the one that failed."""
    payload = encode(
        BackgroundTasks(
            [
                BackgroundTask(fail, str(events_file), "a"),
                BackgroundTask(record, str(events_file), "b"),
            ],
            continue_on_error=True,
        )
    )
    done: set[int] = set()
    assert run_payload(payload, done) == ["tests.apps.remote_tasks.fail"]
    assert run_payload(payload, done) == ["tests.apps.remote_tasks.fail"]
    assert ran(events_file) == ["a", "b", "a"]


def test_a_function_the_worker_cannot_import_fails_under_its_own_name(
    events_file: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Code that differs between web and worker: that task fails, the policy decides the rest."""
    payload = encode(BackgroundTasks([BackgroundTask(record, str(events_file), "a")]))
    payload["tasks"].insert(0, {"func": "tests.no_such_module:task", "args": [], "kwargs": {}})
    payload["tasks"].insert(1, {"func": "tests.apps.remote_tasks:record", "args": [], "kwargs": {}})
    payload["continue_on_error"] = True
    done: set[int] = set()
    assert run_payload(payload, done) == [
        "tests.no_such_module.task",
        "tests.apps.remote_tasks.record",
    ]
    assert ran(events_file) == ["a"]
    failures = [r for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == [
        "background task tests.no_such_module.task failed",
        "background task tests.apps.remote_tasks.record failed",
    ]
    assert "cannot import it on this worker (ModuleNotFoundError" in bgtask_log.text
    assert "missing a required argument: 'events'" in bgtask_log.text


def test_a_payload_of_another_format_is_refused(bgtask_log: pytest.LogCaptureFixture) -> None:
    """A web process and its workers must run the same bgtask: an ERROR, the job fails."""
    with pytest.raises(JobRefused, match="payload format 99"):
        run_payload({"bgtask": 99, "tasks": [], "continue_on_error": False}, set())
    (error,) = [r for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert "payload format 99, this worker reads" in error.getMessage()


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({"max": 0}, "max must be"), ({"max": 1, "backoff": -1}, "backoff must be")],
)
def test_a_retry_policy_refuses_nonsense(arguments: dict[str, int], match: str) -> None:
    """No retries at all, or a negative wait: ValueError at construction."""
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**arguments)


class Taking:
    """A backend that keeps what it was handed, as an engine's backend would send it."""

    def __init__(self) -> None:
        self.batches: list[RequestTasks] = []

    def submit(self, tasks: RequestTasks) -> None:
        self.batches.append(tasks.take())


def test_take_hands_over_every_task_in_run_order_and_seals_the_request(events_file: Path) -> None:
    """Queued, then the route's fixed tasks; adding to the request afterwards raises."""
    leftover: list[BackgroundTasks] = []

    def view(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        tasks = get_background_tasks()
        tasks.continue_on_error = True
        tasks.add_task(record, str(events_file), "queued")
        leftover.append(tasks)
        return list(text_app()(environ, start_response))

    backend = Taking()
    app = BackgroundTaskMiddleware(
        background(BackgroundTask(record, str(events_file), "route"))(view),
        backend=backend,
    )
    serve(app)
    (batch,) = backend.batches
    assert batch.continue_on_error
    assert [task.args[1] for task in batch.tasks if isinstance(task, BackgroundTask)] == [
        "queued",
        "route",
    ]
    with pytest.raises(RuntimeError, match="already run"):
        leftover[0].add_task(record, str(events_file), "late")
    batch.run_for_request()
    assert ran(events_file) == ["queued", "route"]
