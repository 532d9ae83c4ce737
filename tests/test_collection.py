"""BackgroundTasks: order, tasks added while running, the error policy, logs and threads."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import re
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgtask import BackgroundTask, BackgroundTasks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DEADLINE = 10.0
PRIVATE_EMAIL = "hunter2@example.com"
PRIVATE_KEY = "sk_live_0123456789abcdef"


def record(order: list[str], name: str) -> None:
    """Append ``name`` to ``order``."""
    order.append(name)


async def record_async(order: list[str], name: str) -> None:
    """Append ``name`` to ``order`` after giving the loop a turn."""
    await asyncio.sleep(0)
    order.append(name)


def fail(order: list[str], name: str) -> None:
    """Append ``name``, then raise (naming no argument)."""
    order.append(name)
    raise RuntimeError("smtp server refused the message")


async def fail_async(order: list[str], name: str) -> None:
    """Append ``name`` after a loop turn, then raise (naming no argument)."""
    await asyncio.sleep(0)
    order.append(name)
    raise RuntimeError("smtp server refused the message")


def step(
    order: list[str], name: str, *, is_async: bool = False, fails: bool = False
) -> BackgroundTask:
    """A task that records ``name`` when it runs: sync or async, failing or not."""
    if fails:
        return BackgroundTask(fail_async if is_async else fail, order, name)
    return BackgroundTask(record_async if is_async else record, order, name)


def returned(collection: Callable[[], object]) -> object:
    """What calling ``collection`` returned."""
    return collection()


def bgtask_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    """The records of the ``bgtask`` logger at exactly ``level``."""
    return [r for r in caplog.records if r.name == "bgtask" and r.levelno == level]


# --- order ----------------------------------------------------------------------------


def test_mixed_sync_and_async_tasks_run_in_the_order_added() -> None:
    """Sync and async tasks interleave in exactly the order they were added."""
    order: list[str] = []
    tasks = BackgroundTasks()
    tasks.add_task(record, order, "sync-1")
    tasks.add_task(record_async, order, "async-1")
    tasks.add_task(record_async, order, "async-2")
    tasks.add_task(record, order, "sync-2")
    tasks.add_task(record_async, order, "async-3")
    tasks.add_task(record, order, "sync-3")
    assert returned(tasks) is None
    assert order == ["sync-1", "async-1", "async-2", "sync-2", "async-3", "sync-3"]


def test_ten_async_tasks_in_a_row_run_in_order() -> None:
    """A run of consecutive async tasks keeps its order."""
    order: list[str] = []
    tasks = BackgroundTasks()
    for number in range(10):
        tasks.add_task(record_async, order, str(number))
    tasks()
    assert order == [str(number) for number in range(10)]


def test_tasks_given_to_the_constructor_run_before_added_ones() -> None:
    """``tasks=[...]`` are queued first, in their order."""
    order: list[str] = []
    tasks = BackgroundTasks([step(order, "given-1"), step(order, "given-2", is_async=True)])
    tasks.add_task(record, order, "added")
    tasks()
    assert order == ["given-1", "given-2", "added"]


def test_add_task_lets_a_task_take_a_func_keyword() -> None:
    """``func`` is positional-only, so ``func=`` reaches the task."""
    seen: list[str] = []

    def notify(func: str) -> None:
        seen.append(func)

    async def notify_async(func: str) -> None:
        seen.append(func)

    tasks = BackgroundTasks()
    tasks.add_task(notify, func="sync")
    tasks.add_task(notify_async, func="async")
    tasks()
    assert seen == ["sync", "async"]


def test_add_task_rejects_arguments_that_cannot_bind() -> None:
    """A wrong call raises TypeError at ``add_task`` and queues nothing."""
    tasks = BackgroundTasks()
    with pytest.raises(
        TypeError, match=r"cannot queue .*record: missing a required argument: 'name'"
    ):
        tasks.add_task(record, [])  # type: ignore[call-arg]
    assert len(tasks) == 0


@pytest.mark.parametrize("adder_is_async", [False, True], ids=["sync-adder", "async-adder"])
@pytest.mark.parametrize("added_is_async", [False, True], ids=["adds-sync", "adds-async"])
def test_tasks_added_by_a_running_task_run_after_the_others(
    adder_is_async: bool, added_is_async: bool
) -> None:
    """A task queued by a running task runs after everything already queued."""
    order: list[str] = []
    tasks = BackgroundTasks()
    added = record_async if added_is_async else record

    def add() -> None:
        order.append("adder")
        tasks.add_task(added, order, "added")

    async def add_async() -> None:
        add()

    tasks.add_task(add_async if adder_is_async else add)
    tasks.add_task(record, order, "sync-after")
    tasks.add_task(record_async, order, "async-after")
    tasks()
    assert order == ["adder", "sync-after", "async-after", "added"]


def test_tasks_added_by_added_tasks_run_too() -> None:
    """Additions made while running keep being picked up until none are left."""
    order: list[str] = []
    tasks = BackgroundTasks()

    def add_next(number: int) -> None:
        order.append(str(number))
        if number < 5:
            follow = add_next_async if number % 2 else add_next
            tasks.add_task(follow, number + 1)

    async def add_next_async(number: int) -> None:
        add_next(number)

    tasks.add_task(add_next, 0)
    tasks()
    assert order == ["0", "1", "2", "3", "4", "5"]


# --- error policy ---------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_failing_task_is_logged_with_traceback_and_the_rest_are_skipped(
    bgtask_log: pytest.LogCaptureFixture, is_async: bool
) -> None:
    """A failure is logged at ERROR with its traceback; each later task is logged as skipped."""
    order: list[str] = []
    failing = step(order, "failing", is_async=is_async, fails=True)
    later = [step(order, "later-sync"), step(order, "later-async", is_async=True)]
    tasks = BackgroundTasks([step(order, "first"), failing, *later])

    assert returned(tasks) is None

    assert order == ["first", "failing"]
    [error] = bgtask_records(bgtask_log, logging.ERROR)
    assert error.getMessage() == f"background task {failing.name} failed"
    assert error.exc_info is not None
    assert error.exc_info[0] is RuntimeError
    assert "Traceback" in bgtask_log.text
    assert "RuntimeError: smtp server refused the message" in bgtask_log.text
    skipped = bgtask_records(bgtask_log, logging.WARNING)
    assert [r.getMessage() for r in skipped] == [
        f"background task {task.name} skipped: an earlier task of its collection failed"
        for task in later
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_continue_on_error_runs_every_task(
    bgtask_log: pytest.LogCaptureFixture, is_async: bool
) -> None:
    """With ``continue_on_error=True`` every task runs and each failure is logged."""
    order: list[str] = []
    tasks = BackgroundTasks(
        [
            step(order, "fails-1", is_async=is_async, fails=True),
            step(order, "sync"),
            step(order, "fails-2", is_async=not is_async, fails=True),
            step(order, "async", is_async=True),
        ],
        continue_on_error=True,
    )
    assert returned(tasks) is None
    assert order == ["fails-1", "sync", "fails-2", "async"]
    assert len(bgtask_records(bgtask_log, logging.ERROR)) == 2
    assert bgtask_records(bgtask_log, logging.WARNING) == []


def test_each_tasks_handle_tells_how_it_ended() -> None:
    """Calling returns None; each task says succeeded, failed or skipped, with its times."""
    order: list[str] = []
    tasks = BackgroundTasks()
    ok = tasks.add_task(record, order, "ok")
    failing = tasks.add_task(fail, order, "no")
    after = tasks.add_task(record, order, "never")
    assert returned(tasks) is None
    assert (ok.state, failing.state, after.state) == ("succeeded", "failed", "skipped")
    assert isinstance(failing.error, RuntimeError)
    assert ok.error is None
    assert ok.queued_at is not None
    assert ok.started_at is not None
    assert ok.ended_at is not None
    assert ok.queued_at <= ok.started_at <= ok.ended_at
    assert after.started_at is None


@pytest.mark.parametrize(
    "error",
    [ValueError("x"), LookupError("x"), ExceptionGroup("many", [OSError("x")])],
    ids=lambda error: type(error).__name__,
)
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_calling_a_collection_never_raises_an_exception(
    bgtask_log: pytest.LogCaptureFixture, error: Exception, is_async: bool
) -> None:
    """Whatever Exception a task raises, calling the collection returns None."""

    def raise_it() -> None:
        raise error

    async def raise_it_async() -> None:
        raise error

    tasks = BackgroundTasks()
    tasks.add_task(raise_it_async if is_async else raise_it)
    assert returned(tasks) is None
    [failure] = bgtask_records(bgtask_log, logging.ERROR)
    assert failure.exc_info is not None
    assert failure.exc_info[1] is error


class CustomStop(BaseException):
    """A BaseException of the application's own (gevent.Timeout is one)."""


@pytest.mark.parametrize("error_type", [SystemExit, KeyboardInterrupt, CustomStop])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_tasks_own_base_exception_is_a_failure_of_that_task(
    error_type: type[BaseException], is_async: bool, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Raised by the task itself (not by a signal handler): logged, the policy goes on."""
    order: list[str] = []

    def stop() -> None:
        raise error_type

    async def stop_async() -> None:
        await asyncio.sleep(0)
        raise error_type

    def run_collection() -> None:
        tasks = BackgroundTasks(continue_on_error=True)
        tasks.add_task(record_async, order, "before")
        tasks.add_task(stop_async if is_async else stop)
        tasks.add_task(record_async, order, "after-async")
        tasks.add_task(record, order, "after-sync")
        tasks()

    # Off the main thread: a KeyboardInterrupt there is never Ctrl-C.
    thread = threading.Thread(target=run_collection)
    thread.start()
    thread.join(DEADLINE)
    assert order == ["before", "after-async", "after-sync"]
    [failure] = bgtask_records(bgtask_log, logging.ERROR)
    assert "stop" in failure.getMessage()
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], error_type)


def test_system_exit_from_a_signal_handler_stops_the_collection() -> None:
    """gunicorn's timeout and quit handlers call sys.exit inside the running task: it propagates."""
    order: list[str] = []

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(1)

    def interrupted() -> None:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(1_000_000):  # the handler runs between two bytecodes of this loop
            pass

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        tasks = BackgroundTasks(continue_on_error=True)
        tasks.add_task(interrupted)
        tasks.add_task(record, order, "after")
        with pytest.raises(SystemExit):
            tasks()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert order == []


def test_keyboard_interrupt_under_pythons_own_sigint_handler_propagates() -> None:
    """Ctrl-C in a development server (main thread, Python's handler) still stops it."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    # Python's own handler, as `python -m flask run` has it (a background shell ignores SIGINT).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        tasks = BackgroundTasks([BackgroundTask(interrupt)], continue_on_error=True)
        with pytest.raises(KeyboardInterrupt):
            tasks()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_keyboard_interrupt_under_a_servers_sigint_handler_is_a_failure(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """gunicorn handles SIGINT itself: a KeyboardInterrupt can only be the task's own."""
    order: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        tasks = BackgroundTasks(continue_on_error=True)
        tasks.add_task(interrupt)
        tasks.add_task(record, order, "after")
        tasks()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert order == ["after"]
    [failure] = bgtask_records(bgtask_log, logging.ERROR)
    assert "interrupt" in failure.getMessage()


def test_async_task_raising_cancelled_error_is_reported(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A task that stops its collection is named in an ERROR record."""

    async def cancelled() -> None:
        raise asyncio.CancelledError

    order: list[str] = []
    cancelled_task = BackgroundTask(cancelled)
    BackgroundTasks([cancelled_task, step(order, "after")])()
    assert order == []
    assert [r.getMessage() for r in bgtask_records(bgtask_log, logging.WARNING)] == [
        f"background task {__name__}.record skipped: an earlier task of its collection failed"
    ]
    errors = bgtask_records(bgtask_log, logging.ERROR)
    assert any(cancelled_task.name in r.getMessage() for r in errors)


# --- what the logs say, and never say -------------------------------------------------


def test_failure_log_never_contains_argument_values(bgtask_log: pytest.LogCaptureFixture) -> None:
    """Names and tracebacks are logged; argument values never are, at any level."""

    class Sender:
        def __call__(self, to: str, *, token: str) -> None:
            pass

    order: list[str] = []
    tasks = BackgroundTasks()
    tasks.add_task(record, [PRIVATE_EMAIL], PRIVATE_KEY)
    tasks.add_task(record_async, [PRIVATE_EMAIL], name=PRIVATE_KEY)
    tasks.add_task(functools.partial(fail, [PRIVATE_EMAIL]), name=PRIVATE_KEY)
    tasks.add_task(fail_async, order, PRIVATE_EMAIL)
    tasks.add_task(Sender(), PRIVATE_EMAIL, token=PRIVATE_KEY)
    tasks.add_task(functools.partial(record_async, order), name=PRIVATE_EMAIL)
    tasks()

    assert len(bgtask_records(bgtask_log, logging.ERROR)) == 1
    assert len(bgtask_records(bgtask_log, logging.WARNING)) == 3
    assert "Traceback" in bgtask_log.text
    assert PRIVATE_EMAIL not in bgtask_log.text
    assert PRIVATE_KEY not in bgtask_log.text
    for log_record in bgtask_log.records:
        assert PRIVATE_EMAIL not in log_record.getMessage()
        assert PRIVATE_KEY not in log_record.getMessage()


def test_failure_log_names_a_continued_async_failure_without_its_arguments(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """An async failure under ``continue_on_error`` is logged by name, without its arguments."""
    tasks = BackgroundTasks(continue_on_error=True)
    tasks.add_task(fail_async, [], PRIVATE_EMAIL)
    tasks.add_task(fail, [], PRIVATE_KEY)
    tasks()
    assert [r.getMessage() for r in bgtask_records(bgtask_log, logging.ERROR)] == [
        f"background task {__name__}.fail_async failed",
        f"background task {__name__}.fail failed",
    ]
    assert PRIVATE_EMAIL not in bgtask_log.text
    assert PRIVATE_KEY not in bgtask_log.text


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_debug_log_has_start_and_finish_lines_with_a_duration(
    bgtask_log: pytest.LogCaptureFixture, is_async: bool
) -> None:
    """At DEBUG each task logs when it starts and how long it took."""
    order: list[str] = []
    task = step(order, "timed", is_async=is_async)
    BackgroundTasks([task])()
    messages = [r.getMessage() for r in bgtask_records(bgtask_log, logging.DEBUG)]
    task_lines = [m for m in messages if task.name in m]
    assert len(task_lines) == 2
    assert task_lines[0] == f"background task {task.name} started"
    assert re.fullmatch(
        rf"background task {re.escape(task.name)} finished in \d+\.\d{{3}} ms", task_lines[1]
    )


def test_failed_task_logs_no_finish_line(bgtask_log: pytest.LogCaptureFixture) -> None:
    """A task that raised is logged as failed, not as finished."""
    order: list[str] = []
    BackgroundTasks(
        [step(order, "a", fails=True), step(order, "b", is_async=True, fails=True)],
        continue_on_error=True,
    )()
    assert not [r for r in bgtask_log.records if "finished in" in r.getMessage()]
    assert len(bgtask_records(bgtask_log, logging.ERROR)) == 2


def test_no_debug_lines_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    """At INFO nothing is logged for tasks that succeed."""
    order: list[str] = []
    with caplog.at_level(logging.INFO, logger="bgtask"):
        BackgroundTasks([step(order, "a"), step(order, "b", is_async=True)])()
    assert order == ["a", "b"]
    assert [r for r in caplog.records if r.name == "bgtask"] == []


# --- nested collections ---------------------------------------------------------------


def test_nested_collection_runs_under_its_own_policy_and_its_failure_stops_the_outer(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """An inner ``continue_on_error`` collection runs all of its tasks; the outer then stops."""
    order: list[str] = []
    inner = BackgroundTasks(
        [step(order, "inner-fails", fails=True), step(order, "inner-after", is_async=True)],
        continue_on_error=True,
    )
    outer_after = step(order, "outer-after")
    BackgroundTasks([step(order, "outer-before"), inner, outer_after])()
    assert order == ["outer-before", "inner-fails", "inner-after"]
    [skipped] = bgtask_records(bgtask_log, logging.WARNING)
    assert skipped.getMessage().startswith(f"background task {outer_after.name} skipped")


def test_stopping_nested_collection_inside_a_continuing_outer_one(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """An inner stop-on-error collection skips its own rest; the outer goes on."""
    order: list[str] = []
    inner = BackgroundTasks(
        [step(order, "inner-fails", is_async=True, fails=True), step(order, "inner-skipped")]
    )
    BackgroundTasks([inner, step(order, "outer-after", is_async=True)], continue_on_error=True)()
    assert order == ["inner-fails", "outer-after"]
    assert len(bgtask_records(bgtask_log, logging.WARNING)) == 1


def test_skipped_nested_collection_logs_each_of_its_tasks(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A nested collection skipped by the outer policy logs every task in it as skipped."""
    order: list[str] = []
    deepest = BackgroundTasks([step(order, "deep")])
    inner = BackgroundTasks([step(order, "inner-1", is_async=True), deepest])
    BackgroundTasks([step(order, "fails", fails=True), inner])()
    assert order == ["fails"]
    skipped = bgtask_records(bgtask_log, logging.WARNING)
    assert len(skipped) == 2
    assert all("skipped" in r.getMessage() for r in skipped)


def test_successful_nested_collection_does_not_stop_the_outer() -> None:
    """An inner collection whose tasks all succeed lets the outer carry on."""
    order: list[str] = []
    inner = BackgroundTasks([step(order, "inner-sync"), step(order, "inner-async", is_async=True)])
    BackgroundTasks([inner, step(order, "outer")])()
    assert order == ["inner-sync", "inner-async", "outer"]


@pytest.mark.parametrize(
    "item",
    [print, PRIVATE_EMAIL, None, [PRIVATE_EMAIL]],
    ids=["builtin", "str", "None", "list"],
)
def test_non_task_item_is_rejected_naming_only_its_type(item: object) -> None:
    """``tasks=[...]`` accepts only BackgroundTask and BackgroundTasks items."""
    with pytest.raises(
        TypeError,
        match=rf"expected a BackgroundTask or BackgroundTasks, got {type(item).__name__}; "
        r"use add_task\(func, \*args, \*\*kwargs\)",
    ) as excinfo:
        BackgroundTasks([BackgroundTask(print), item])  # type: ignore[list-item]
    assert PRIVATE_EMAIL not in str(excinfo.value)


# --- threads --------------------------------------------------------------------------


def test_add_task_from_many_threads_runs_every_task_exactly_once() -> None:
    """1000 tasks added by 16 threads at once all run, each exactly once."""
    thread_count, task_count = 16, 1000
    tasks = BackgroundTasks()
    ran: list[str] = []
    start = threading.Barrier(thread_count, timeout=10)

    def add_share(first: int) -> None:
        start.wait()
        for number in range(first, task_count, thread_count):
            if number % 3:
                tasks.add_task(record, ran, str(number))
            else:
                tasks.add_task(record_async, ran, str(number))

    threads = [threading.Thread(target=add_share, args=(first,)) for first in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(tasks) == task_count

    tasks()

    counts = collections.Counter(ran)
    assert set(counts) == {str(number) for number in range(task_count)}
    assert set(counts.values()) == {1}


# --- the error policy as a property ---------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def recorded_bgtask_log() -> Iterator[list[logging.LogRecord]]:
    """Record the ``bgtask`` logger from DEBUG up into a fresh list."""
    logger = logging.getLogger("bgtask")
    handler = _ListHandler()
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


TASK_SPECS = st.lists(
    st.fixed_dictionaries({"is_async": st.booleans(), "fails": st.booleans()}), max_size=8
)


@settings(deadline=None)
@given(specs=TASK_SPECS)
def test_error_policy_decides_exactly_which_tasks_run(specs: list[dict[str, bool]]) -> None:
    """Stop: every task up to and including the first failure; continue: all of them."""
    for continue_on_error in (False, True):
        order: list[str] = []
        tasks = BackgroundTasks(
            [step(order, str(i), **spec) for i, spec in enumerate(specs)],
            continue_on_error=continue_on_error,
        )
        with recorded_bgtask_log() as records:
            assert returned(tasks) is None

        failures = [i for i, spec in enumerate(specs) if spec["fails"]]
        last_run = len(specs) - 1 if continue_on_error or not failures else failures[0]
        expected = [str(i) for i in range(last_run + 1)]
        assert order == expected

        def messages(
            level: int, text: str, records: list[logging.LogRecord] = records
        ) -> list[str]:
            return [
                r.getMessage() for r in records if r.levelno == level and text in r.getMessage()
            ]

        assert len(messages(logging.WARNING, " skipped: ")) == len(specs) - len(expected)
        ran_and_failed = [i for i in failures if i <= last_run]
        assert len(messages(logging.ERROR, " failed")) == len(ran_and_failed)
        assert len(messages(logging.DEBUG, " started")) == len(expected)
        assert len(messages(logging.DEBUG, " finished in ")) == len(expected) - len(ran_and_failed)


@settings(deadline=None, max_examples=50)
@given(
    specs=TASK_SPECS,
    added=st.lists(st.booleans(), max_size=3),
)
def test_tasks_added_while_running_run_last_in_the_order_added(
    specs: list[dict[str, bool]], added: list[bool]
) -> None:
    """Tasks queued by the first task run after all the given ones, in their own order."""
    order: list[str] = []
    tasks = BackgroundTasks(continue_on_error=True)

    def add_more() -> None:
        for i, is_async in enumerate(added):
            tasks.add_task(record_async if is_async else record, order, f"added-{i}")

    tasks.add_task(add_more)
    for i, spec in enumerate(specs):
        tasks.add_task(record_async if spec["is_async"] else record, order, str(i))
    with recorded_bgtask_log():
        tasks()
    assert order == [str(i) for i in range(len(specs))] + [f"added-{i}" for i in range(len(added))]
