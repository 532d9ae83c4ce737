"""Declared tasks: the allow-list checked at add_task, and the whole payload checked on a
worker before anything runs (here in this process; with real workers in test_engines.py).
"""

from __future__ import annotations

import functools
import logging
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from rq import Queue

from bgtask import BackgroundTask, BackgroundTasks
from bgtask._allowlist import AllowList
from bgtask._job import PAYLOAD_VERSION, JobRefused, run_payload
from bgtask._payload import encode
from bgtask.celery import CeleryBackend
from bgtask.rq import RQBackend

from .apps import remote_tasks
from .apps.remote_tasks import DECLARED, read_events, record, write_marker
from .helpers.deployments import Mailer, unreachable_app, unreachable_queue

if TYPE_CHECKING:
    from pathlib import Path


def fresh_rq_queue() -> Queue:
    """An RQ queue of a name no other test declares tasks for (allow-lists are per name)."""
    name = f"bgtask-declared-{uuid.uuid4().hex[:8]}"
    return Queue(name, connection=unreachable_queue().connection)


def crafted(*tasks: dict[str, Any], version: object = PAYLOAD_VERSION) -> dict[str, Any]:
    """A payload as anyone who can write to the broker could send it."""
    return {"bgtask": version, "declared": True, "continue_on_error": True, "tasks": list(tasks)}


def entry(func: object, *args: object) -> dict[str, Any]:
    return {"func": func, "args": list(args), "kwargs": {}}


# -- at add_task ---------------------------------------------------------------------------


def test_celery_refuses_an_undeclared_function_at_add_task_saying_how_to_declare_it() -> None:
    """For Celery the allow-list is mandatory: TypeError in the request, naming the function."""
    backend = CeleryBackend(unreachable_app())
    expected = (
        r"cannot queue tests\.apps\.remote_tasks\.write_marker on Celery app .*: "
        r"tests\.apps\.remote_tasks\.write_marker is not declared, and workers run only declared "
        r"functions; declare it with CeleryBackend\(app, tasks=\[\.\.\.\]\) or decorate it "
        r"with @backend\.task"
    )
    with pytest.raises(TypeError, match=expected):
        backend.check(BackgroundTask(write_marker, "path"))


@pytest.mark.parametrize("engine", ["rq", "celery"])
def test_a_partial_is_checked_as_the_function_it_wraps(engine: str) -> None:
    """functools.partial unwraps: declared function passes, undeclared one is named."""
    backend: RQBackend | CeleryBackend = (
        RQBackend(fresh_rq_queue(), tasks=DECLARED)
        if engine == "rq"
        else CeleryBackend(unreachable_app(), tasks=DECLARED)
    )
    backend.check(BackgroundTask(functools.partial(record, "events"), "tag"))
    with pytest.raises(TypeError, match=r"tests\.apps\.remote_tasks\.write_marker is not declared"):
        backend.check(BackgroundTask(functools.partial(write_marker, "path")))


def test_rq_without_an_allow_list_takes_any_importable_function() -> None:
    """RQ's own trust model: no tasks=..., no allow-list."""
    RQBackend(fresh_rq_queue()).check(BackgroundTask(write_marker, "path"))


def test_rq_backends_of_one_queue_share_its_allow_list() -> None:
    """The union of what the process declared for that queue name applies to each."""
    queue = fresh_rq_queue()
    plain = RQBackend(queue)
    RQBackend(queue, tasks=[record])
    plain.check(BackgroundTask(record, "events", "tag"))
    with pytest.raises(TypeError, match="is not declared"):
        plain.check(BackgroundTask(write_marker, "path"))


@pytest.mark.parametrize("engine", ["rq", "celery"])
def test_the_task_decorator_declares_the_function_and_returns_it_unchanged(engine: str) -> None:
    """``@backend.task`` on sync and async functions: the very object comes back."""
    backend: RQBackend | CeleryBackend = (
        RQBackend(fresh_rq_queue()) if engine == "rq" else CeleryBackend(unreachable_app())
    )
    assert backend.task(remote_tasks.record_async) is remote_tasks.record_async
    assert backend.task(write_marker) is write_marker
    backend.check(BackgroundTask(write_marker, "path"))
    backend.check(BackgroundTask(remote_tasks.record_async, "events", "tag"))


@pytest.mark.parametrize(
    ("func", "match"),
    [
        (lambda: None, "a lambda has no name"),
        (functools.partial(record, "events"), "an object of type partial has no name"),
        (Mailer().send, "it is a method bound to an object"),
    ],
    ids=["lambda", "partial", "bound-method"],
)
def test_declaring_what_a_worker_could_not_import_raises_at_declaration(
    func: Any, match: str
) -> None:
    """tasks=[...] is checked when the backend is built."""
    with pytest.raises(TypeError, match=f"cannot declare .* as a task: {match}"):
        CeleryBackend(unreachable_app(), tasks=[func])


def test_a_function_defined_inside_a_function_cannot_be_declared() -> None:
    """Neither in tasks=[...] nor with the decorator."""

    def local_task() -> None: ...

    backend = CeleryBackend(unreachable_app())
    with pytest.raises(TypeError, match=r"defined inside a function \(.*local_task\)"):
        backend.task(local_task)


# -- on the worker, before anything runs ------------------------------------------------------


def test_with_an_allow_list_one_undeclared_name_refuses_the_whole_job(
    events_file: Path, tmp_path: Path, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """A declared task first, an importable undeclared one after: neither runs, one ERROR."""
    marker = tmp_path / "marker"
    payload = crafted(
        entry("tests.apps.remote_tasks:record", str(events_file), "declared"),
        entry("tests.apps.remote_tasks:write_marker", str(marker)),
    )
    with pytest.raises(JobRefused, match="1 function name"):
        run_payload(payload, set(), allowed=AllowList(DECLARED), job="job 1")
    assert not events_file.exists()
    assert not marker.exists()
    (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert error == (
        "refused to run job 1: 1 function name(s) not declared on this worker (an allow-list "
        "applies; nothing was imported): 'tests.apps.remote_tasks:write_marker'; none of its "
        "tasks ran"
    )


def test_with_an_allow_list_the_declared_function_object_runs(events_file: Path) -> None:
    """The allow-list maps names to the functions themselves."""
    payload = encode(
        BackgroundTasks([BackgroundTask(record, str(events_file), "a")]), declared=True
    )
    assert run_payload(payload, set(), allowed=AllowList(DECLARED)) == []
    assert [e["tag"] for e in read_events(events_file)] == ["a"]


@pytest.mark.parametrize("allowed", [None, AllowList(DECLARED)], ids=["no-allow-list", "declared"])
def test_a_name_with_a_newline_is_refused_and_logged_escaped_on_one_line(
    allowed: AllowList | None, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """A newline in a name from a message cannot forge a log line."""
    payload = crafted(entry("os:system\nERROR bgtask forged line", "true"))
    with pytest.raises(JobRefused):
        run_payload(payload, set(), allowed=allowed)
    (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert "\n" not in error
    assert r"'os:system\nERROR bgtask forged line'" in error


def test_without_an_allow_list_every_name_is_checked_before_anything_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A well-formed module with an import side effect, then a malformed name: no import."""
    marker = tmp_path / "imported"
    monkeypatch.setenv("BGTASK_TEST_IMPORT_MARKER", str(marker))
    monkeypatch.delitem(sys.modules, "tests.apps.import_side_effect", raising=False)
    payload = crafted(entry("tests.apps.import_side_effect:run"), entry("not a name"))
    with pytest.raises(JobRefused, match="not a module:qualname name"):
        run_payload(payload, set())
    assert "tests.apps.import_side_effect" not in sys.modules
    assert not marker.exists()


def test_long_names_are_truncated_in_the_error(bgtask_log: pytest.LogCaptureFixture) -> None:
    """About 200 characters of each name, and how long it was."""
    payload = crafted(entry("x" * 5000 + ":y"))
    with pytest.raises(JobRefused):
        run_payload(payload, set(), allowed=AllowList())
    (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert "... (5004 characters)" in error
    assert len(error) < 600


@pytest.mark.parametrize(
    "payload",
    [
        "not a dict",
        {"bgtask": PAYLOAD_VERSION, "tasks": "nope", "continue_on_error": False},
        {"bgtask": PAYLOAD_VERSION, "tasks": [], "continue_on_error": "yes"},
        crafted({"func": 42, "args": [], "kwargs": {}}),
        crafted({"func": "tests.apps.remote_tasks:record", "args": {}, "kwargs": {}}),
        crafted({"func": "tests.apps.remote_tasks:record", "args": [], "kwargs": {1: 2}}),
        crafted(
            functools.reduce(
                lambda inner, _: {"tasks": [inner], "continue_on_error": False},
                range(40),
                entry("tests.apps.remote_tasks:record"),
            )
        ),
    ],
    ids=["not-a-dict", "tasks", "policy", "func", "args", "kwargs", "too-deep"],
)
def test_a_malformed_payload_is_refused_whole(payload: Any) -> None:
    """Whatever its shape, nothing runs and the job fails."""
    with pytest.raises(JobRefused, match=r"malformed|payload format"):
        run_payload(payload, set())


@pytest.mark.parametrize("version", [1, 3, "2", None, "x\ny" * 100])
def test_an_unknown_payload_version_is_refused_escaped_and_truncated(
    version: object, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Versions other than this bgtask's: an ERROR on one line, the job fails."""
    with pytest.raises(JobRefused, match="payload format"):
        run_payload(crafted(entry("tests.apps.remote_tasks:record"), version=version), set())
    (error,) = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert "\n" not in error
    assert len(error) < 500
