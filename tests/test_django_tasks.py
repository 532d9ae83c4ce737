"""bgtask.django.AfterResponseBackend against the real ``django.tasks`` (Django 6) or the
django-tasks backport (Django 5.2 on Python 3.11), in the test project, in a process of its
own: what Django's contract asks of a backend, and bgtask's order, policy and transactions."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from .helpers.servers import ROOT

if TYPE_CHECKING:
    from pathlib import Path


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # django itself missing
        return False


pytestmark = pytest.mark.skipif(
    not (_has("django.tasks") or _has("django_tasks")),
    reason="needs django.tasks (Django 6, Python 3.12+) or the django-tasks backport",
)

NOT_RUN = "bgtask.django.TaskNotRun"


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the scenarios (tests/apps/djangoproject/drive_tasks.py)."""
    tmp: Path = tmp_path_factory.mktemp("django_tasks")
    result = subprocess.run(
        [sys.executable, "-m", "tests.apps.djangoproject.drive_tasks"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "BGTASK_DJANGO_RECORD": str(tmp / "rec"),
             "DJANGO_SQLITE": str(tmp / "db.sqlite3")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    seen: dict[str, Any] = json.loads(result.stdout)
    seen["ran"] = [json.loads(line) for line in (tmp / "rec").read_text().splitlines()]
    seen["log"] = result.stderr
    return seen


def test_flags_are_true_only_where_true(observed: dict[str, Any]) -> None:
    """Async tasks run; no defer, no priority order, no results across processes."""
    assert observed["flags"] == {
        "supports_defer": False,
        "supports_async_task": True,
        "supports_get_result": False,
        "supports_priority": False,
    }


def test_enqueued_in_a_request_they_run_after_it_in_order(observed: dict[str, Any]) -> None:
    """READY when the view returns; after the response: SUCCESSFUL, in enqueue order with
    the request's add_task, the async task on bgtask's loop."""
    seen = observed["/tasks/enqueue"]
    assert seen["at_enqueue"] == ["READY"] * 3
    assert seen["after_response"] == ["SUCCESSFUL"] * 3
    assert [r["task"] for r in observed["ran"][:4]] == [
        "add", "write_notification", "greet", "with_context",
    ]  # fmt: skip
    add, greet, with_context = seen["results"]
    assert (add["value"], greet["value"]) == (5, "hello ada")
    assert (add["times"], add["ordered"], add["aware"]) == ([True, True, True], True, True)
    assert (add["workers"], add["errors"]) == (1, [])
    assert observed["ran"][2]["thread"] != observed["ran"][0]["thread"]  # the loop's thread
    assert with_context["value"]["attempt"] == 1


def test_takes_context_gets_its_own_result(observed: dict[str, Any]) -> None:
    seen = observed["/tasks/enqueue"]
    assert seen["results"][2]["value"]["id"]
    assert seen["found"] == [True] * 3


def test_a_failing_task_is_failed_and_the_rest_not_run(observed: dict[str, Any]) -> None:
    """bgtask's policy: the failure's error is Django's TaskError; the next one FAILED too,
    with TaskNotRun saying why."""
    explode, skipped = observed["/tasks/fail"]["results"]
    assert explode["status"] == "FAILED"
    assert explode["errors"] == ["builtins.ValueError"]
    assert explode["traceback_tail"] == "ValueError: boom"
    assert (skipped["status"], skipped["errors"]) == ("FAILED", [NOT_RUN])
    assert skipped["traceback_tail"].endswith(
        "did not run: an earlier task of its collection failed"
    )
    assert skipped["times"] == [True, False, True]  # never started


def test_a_rolled_back_transaction_fails_its_tasks_result(observed: dict[str, Any]) -> None:
    rolled_back, kept = observed["/tasks/atomic"]["results"]
    assert rolled_back["errors"] == [NOT_RUN]
    assert rolled_back["traceback_tail"].endswith(
        "the transaction it was queued in was rolled back"
    )
    assert (kept["status"], kept["value"]) == ("SUCCESSFUL", 10)


def test_a_view_that_raised_fails_its_tasks_result(observed: dict[str, Any]) -> None:
    (result,) = observed["/tasks/raise"]["results"]
    assert observed["/tasks/raise"]["status"] == 500
    assert result["traceback_tail"].endswith("did not run: the view raised ValueError")


def test_outside_a_request_the_offload_pool_runs_it(observed: dict[str, Any]) -> None:
    outside = observed["outside"]
    assert (outside["status"], outside["value"], outside["ordered"]) == ("SUCCESSFUL", 15, True)


def test_what_the_backend_cannot_do_is_refused_with_invalid_task(
    observed: dict[str, Any],
) -> None:
    assert observed["refused"] == {
        "run_after": "Backend does not support run_after.",
        "priority": "Backend does not support setting priority of tasks.",
        "queue": "Queue 'elsewhere' is not valid for backend.",
    }


def test_get_result_keeps_a_bounded_number_of_recent_results(observed: dict[str, Any]) -> None:
    """Past MAX_RESULTS the oldest is forgotten; the task itself still ran."""
    assert observed["bound"] == {"kept": [False, True, True], "oldest": "SUCCESSFUL"}
    assert observed["missing"] == (
        "no result 'nope' in this process: AfterResponseBackend keeps the last 1000 results "
        "of the process that enqueued them"
    )


def test_aenqueue_from_an_async_view_joins_the_request(observed: dict[str, Any]) -> None:
    seen = observed["/tasks/aenqueue"]
    assert seen["at_enqueue"] == ["READY", "READY"]
    assert [(r["task"], r.get("value")) for r in seen["results"]] == [
        ("greet", "hello bob"), ("add", 42),
    ]  # fmt: skip


def test_outside_a_request_immediate_runs_inside_enqueue(observed: dict[str, Any]) -> None:
    assert observed["immediate"] == "SUCCESSFUL"


def test_bad_options_are_improperly_configured(observed: dict[str, Any]) -> None:
    assert observed["improper"] == [
        "TASKS['default']['OPTIONS'] has unknown keys ['MAX_RESULT']; the keys are "
        "['MAX_RESULTS', 'OUTSIDE_REQUEST']",
        "TASKS['default']['OPTIONS']['MAX_RESULTS'] must be a whole number >= 0, got -1",
        "TASKS['default']['OPTIONS']['OUTSIDE_REQUEST'] must be 'offload' or 'immediate', "
        "got 'later'",
    ]


def test_it_refuses_a_project_whose_tasks_go_to_rq_or_celery(observed: dict[str, Any]) -> None:
    assert observed["with_another_backend"].startswith(
        "TASKS['default']: AfterResponseBackend runs tasks in this process, but "
        "settings.BGTASK sends requests' tasks to other processes (RQ, Celery)"
    )


def test_enqueued_after_its_request_finished_it_still_runs(observed: dict[str, Any]) -> None:
    """From a coroutine a request's task left behind: the request's collection is sealed,
    so the task gets a collection of its own, on the pool."""
    assert [(r["status"], r.get("value")) for r in observed["late"]] == [("SUCCESSFUL", 18)]


def test_an_async_task_that_raises_is_failed_with_its_error(observed: dict[str, Any]) -> None:
    (failed,) = observed["/tasks/async-fail"]["results"]
    assert (failed["status"], failed["errors"]) == ("FAILED", ["builtins.ValueError"])
    assert failed["traceback_tail"] == "ValueError: async boom"


def test_a_return_value_json_cannot_hold_fails_the_task(observed: dict[str, Any]) -> None:
    """As Django's own backends: the value is normalized to JSON, or the task failed."""
    (failed,) = observed["/tasks/not-json"]["results"]
    assert (failed["status"], failed["errors"]) == ("FAILED", ["builtins.TypeError"])
