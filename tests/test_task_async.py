"""BackgroundTask with async callables: run on the private loop, blocking until done."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from bgtask import BackgroundTask

from .helpers.recording import request_id

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

PRIVATE_EMAIL = "hunter2@example.com"
PRIVATE_KEY = "sk_live_0123456789abcdef"

calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


async def send_email(to: str, subject: str = "") -> None:
    """Record the call after giving the loop a turn."""
    await asyncio.sleep(0)
    calls.append(("send_email", (to,), {"subject": subject}))


async def fail(to: str) -> None:
    """Raise after giving the loop a turn, naming no argument."""
    await asyncio.sleep(0)
    raise RuntimeError("smtp server refused the message")


class Mailer:
    """A class whose async bound methods and instances are tasks."""

    async def send(self, to: str, subject: str = "") -> None:
        """Record the call, with the instance."""
        await asyncio.sleep(0)
        calls.append(("Mailer.send", (self, to), {"subject": subject}))

    async def __call__(self, to: str, *, subject: str = "") -> None:
        await asyncio.sleep(0)
        calls.append(("Mailer.__call__", (self, to), {"subject": subject}))


class StaticAsyncCall:
    """A callable object whose ``__call__`` is an async staticmethod."""

    @staticmethod
    async def __call__() -> None:
        calls.append(("StaticAsyncCall", (), {}))


def wrapped_send_email(to: str, subject: str = "") -> Coroutine[Any, Any, None]:
    """A sync function that returns a coroutine, as a careless decorator would."""
    return send_email(to, subject)


def wrapped_fail(to: str) -> Coroutine[Any, Any, None]:
    """A sync function returning a coroutine that raises."""
    return fail(to)


ASYNC_CALLABLES = [
    pytest.param(send_email, ("a",), id="async-function"),
    pytest.param(functools.partial(send_email, "a"), (), id="partial"),
    pytest.param(functools.partial(functools.partial(send_email), "a"), (), id="nested-partial"),
    pytest.param(Mailer().send, ("a",), id="bound-method"),
    pytest.param(functools.partial(Mailer().send, "a"), (), id="partial-of-bound-method"),
    pytest.param(Mailer(), ("a",), id="callable-object"),
    pytest.param(functools.partial(Mailer(), "a"), (), id="partial-of-callable-object"),
]


@pytest.mark.parametrize(("func", "args"), ASYNC_CALLABLES)
def test_async_callables_are_async(func: Callable[..., object], args: tuple[Any, ...]) -> None:
    """``is_async`` is True for every kind of async callable."""
    assert BackgroundTask(func, *args).is_async is True


@pytest.mark.parametrize(("func", "args"), ASYNC_CALLABLES)
def test_async_callables_run_to_completion_before_the_call_returns(
    func: Callable[..., object], args: tuple[Any, ...]
) -> None:
    """Calling an async task blocks until its coroutine has finished."""
    BackgroundTask(func, *args)()
    assert len(calls) == 1


def test_object_with_async_static_call_method_is_awaited() -> None:
    """An object whose ``__call__`` is an async staticmethod takes no ``self``."""
    task = BackgroundTask(StaticAsyncCall())
    assert task.is_async is True
    task()
    assert calls == [("StaticAsyncCall", (), {})]


def test_class_with_async_call_is_not_async() -> None:
    """Calling the class constructs an instance, which is sync, so the task is sync."""
    assert BackgroundTask(Mailer).is_async is False


def test_sync_function_returning_a_coroutine_is_not_async() -> None:
    """Such a function is not marked async: nothing tells it apart before it runs."""
    assert BackgroundTask(wrapped_send_email, "a").is_async is False


def test_async_function_runs_with_its_arguments() -> None:
    """An ``async def`` function is awaited with the positional and keyword arguments."""
    BackgroundTask(send_email, "a@example.com", subject="Hi")()
    assert calls == [("send_email", ("a@example.com",), {"subject": "Hi"})]


def test_async_bound_method_runs_on_its_instance() -> None:
    """An async bound method is awaited on the instance it was taken from."""
    mailer = Mailer()
    BackgroundTask(mailer.send, "a@example.com")()
    assert calls == [("Mailer.send", (mailer, "a@example.com"), {"subject": ""})]


def test_object_with_async_call_is_awaited() -> None:
    """An object whose ``__call__`` is ``async def`` is awaited."""
    mailer = Mailer()
    BackgroundTask(mailer, "a@example.com", subject="Hi")()
    assert calls == [("Mailer.__call__", (mailer, "a@example.com"), {"subject": "Hi"})]


def test_async_task_runs_on_the_private_loop_not_the_calling_thread() -> None:
    """The coroutine runs in another thread, on one loop shared by every async task."""
    seen: list[tuple[int, asyncio.AbstractEventLoop]] = []

    async def where() -> None:
        seen.append((threading.get_ident(), asyncio.get_running_loop()))

    BackgroundTask(where)()
    BackgroundTask(where)()
    (first_thread, first_loop), (second_thread, second_loop) = seen
    assert first_thread != threading.get_ident()
    assert first_thread == second_thread
    assert first_loop is second_loop


def test_async_tasks_from_several_threads_all_complete() -> None:
    """Threads calling async tasks at once each block until their own has finished."""
    barrier = threading.Barrier(8, timeout=5)
    finished: list[int] = []
    done_on_return: list[bool] = []
    lock = threading.Lock()

    async def record(number: int) -> None:
        await asyncio.sleep(0)
        with lock:
            finished.append(number)

    def call(number: int) -> None:
        task = BackgroundTask(record, number)
        barrier.wait()
        task()
        with lock:
            done_on_return.append(number in finished)

    threads = [threading.Thread(target=call, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert sorted(finished) == list(range(8))
    assert done_on_return == [True] * 8


def test_exception_propagates_from_a_direct_call() -> None:
    """Calling an async task directly raises what the coroutine raised."""
    with pytest.raises(RuntimeError, match="smtp server refused"):
        BackgroundTask(fail, "a@example.com")()


def test_keyboard_interrupt_propagates_from_a_direct_call() -> None:
    """A BaseException from the coroutine reaches the caller too."""

    async def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        BackgroundTask(interrupt)()


def test_private_loop_survives_a_failing_task() -> None:
    """After a task raised, the next async task still runs."""
    with pytest.raises(RuntimeError):
        BackgroundTask(fail, "a")()
    BackgroundTask(send_email, "b")()
    assert calls == [("send_email", ("b",), {"subject": ""})]


def test_async_task_can_run_more_than_once() -> None:
    """Each call makes a fresh coroutine, so a task is not consumed by running it."""
    task = BackgroundTask(send_email, "a")
    task()
    task()
    assert len(calls) == 2


def test_sync_function_returning_a_coroutine_gets_it_awaited() -> None:
    """The returned coroutine is run on the private loop, not dropped unawaited."""
    BackgroundTask(wrapped_send_email, "a@example.com", subject="Hi")()
    assert calls == [("send_email", ("a@example.com",), {"subject": "Hi"})]


def test_coroutine_returned_by_a_sync_function_propagates_its_exception() -> None:
    """An exception of the returned coroutine reaches the direct caller."""
    with pytest.raises(RuntimeError, match="smtp server refused"):
        BackgroundTask(wrapped_fail, "a")()


def test_waiting_on_a_task_from_inside_the_loop_raises_instead_of_deadlocking() -> None:
    """An async task that calls another async task directly gets a RuntimeError."""
    inner = BackgroundTask(send_email, "a")

    async def call_inner() -> None:
        inner()

    with pytest.raises(RuntimeError, match="cannot wait on the bgtask loop from inside it"):
        BackgroundTask(call_inner)()
    assert calls == []


# --- repr -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "name"),
    [
        pytest.param(
            lambda: BackgroundTask(send_email, PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.send_email",
            id="async-function",
        ),
        pytest.param(
            lambda: BackgroundTask(
                functools.partial(send_email, PRIVATE_EMAIL), subject=PRIVATE_KEY
            ),
            f"functools.partial({__name__}.send_email)",
            id="partial",
        ),
        pytest.param(
            lambda: BackgroundTask(Mailer().send, PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.Mailer.send",
            id="bound-method",
        ),
        pytest.param(
            lambda: BackgroundTask(Mailer(), PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.Mailer instance",
            id="callable-object",
        ),
    ],
)
def test_repr_names_the_coroutine_function_and_never_the_arguments(
    build: Callable[[], BackgroundTask], name: str
) -> None:
    """``repr`` of an async task shows the callable's name, never argument values."""
    task = build()
    assert repr(task) == f"<BackgroundTask {name}>"
    assert PRIVATE_EMAIL not in repr(task)
    assert PRIVATE_KEY not in repr(task)


# --- TypeError at construction --------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "problem"),
    [
        pytest.param(send_email, (), {}, "missing a required argument: 'to'", id="missing"),
        pytest.param(
            send_email,
            (PRIVATE_EMAIL, PRIVATE_EMAIL, PRIVATE_EMAIL),
            {},
            "too many positional arguments",
            id="too-many-positional",
        ),
        pytest.param(
            send_email,
            (PRIVATE_EMAIL,),
            {"cc": PRIVATE_EMAIL},
            "got an unexpected keyword argument 'cc'",
            id="unexpected-keyword",
        ),
        pytest.param(
            Mailer().send,
            (PRIVATE_EMAIL,),
            {"to": PRIVATE_EMAIL},
            "multiple values for argument 'to'",
            id="bound-method-multiple-values",
        ),
        pytest.param(
            Mailer(),
            (PRIVATE_EMAIL,),
            {"cc": PRIVATE_EMAIL},
            "got an unexpected keyword argument 'cc'",
            id="callable-object-unexpected-keyword",
        ),
        pytest.param(
            functools.partial(send_email, PRIVATE_EMAIL),
            (PRIVATE_EMAIL, PRIVATE_EMAIL),
            {},
            "too many positional arguments",
            id="partial-too-many-positional",
        ),
    ],
)
def test_arguments_that_cannot_bind_are_rejected_without_making_a_coroutine(
    func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    """An async callable is checked like a sync one, before any coroutine exists."""
    with pytest.raises(TypeError, match=f"^cannot queue .*: {problem}$") as excinfo:
        BackgroundTask(func, *args, **kwargs)
    assert PRIVATE_EMAIL not in str(excinfo.value)


# --- contextvars ----------------------------------------------------------------------


async def read_request_id(seen: list[str]) -> None:
    """Record the contextvar's value as the task sees it."""
    await asyncio.sleep(0)
    seen.append(request_id.get())


def test_async_task_sees_the_context_captured_at_construction() -> None:
    """A contextvar changed after the task was built keeps its old value in the coroutine."""
    seen: list[str] = []
    token = request_id.set("request-1")
    try:
        task = BackgroundTask(read_request_id, seen)
        request_id.set("request-2")
        task()
    finally:
        request_id.reset(token)
    assert seen == ["request-1"]


def test_coroutine_of_a_sync_function_sees_the_captured_context() -> None:
    """A coroutine returned by a sync task also runs in the captured context."""
    seen: list[str] = []
    token = request_id.set("request-1")
    try:
        task = BackgroundTask(lambda: read_request_id(seen))
        request_id.set("request-2")
        task()
    finally:
        request_id.reset(token)
    assert seen == ["request-1"]


def test_async_task_changes_to_contextvars_do_not_leak_to_the_caller() -> None:
    """A coroutine that sets a contextvar leaves the caller's value alone."""
    seen: list[str] = []

    async def write_then_read() -> None:
        request_id.set("task")
        await asyncio.sleep(0)
        seen.append(request_id.get())

    token = request_id.set("caller")
    try:
        task = BackgroundTask(write_then_read)
        task()
        assert request_id.get() == "caller"
        task()
    finally:
        request_id.reset(token)
    assert seen == ["task", "task"]


def test_each_async_run_starts_from_the_captured_context() -> None:
    """A change made by one run of an async task is not seen by its next run."""
    seen: list[str] = []

    async def read_then_write() -> None:
        seen.append(request_id.get())
        request_id.set("changed by the task")

    task = BackgroundTask(read_then_write)
    task()
    task()
    assert seen == ["-", "-"]


# -- tasks an async task spawns, and tasks that block the loop ------------------------------


def test_drain_waits_for_a_coroutine_an_async_task_spawned() -> None:
    """asyncio.create_task inside a task, fire and forget: pending work for drain()."""
    from bgtask import drain

    release = threading.Event()
    finished: list[str] = []

    async def child() -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        finished.append("child")

    async def parent() -> None:
        asyncio.create_task(child())  # noqa: RUF006 (fire and forget, on purpose)

    BackgroundTask(parent)()
    assert drain(timeout=0.05) is False
    release.set()
    assert drain(timeout=10) is True
    assert finished == ["child"]


def test_a_spawned_coroutine_that_fails_is_logged_by_name(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Its exception is not lost with the task object: ERROR naming it and its parent."""
    from bgtask import drain

    async def child() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("the webhook answered 500")

    async def parent() -> None:
        asyncio.create_task(child())  # noqa: RUF006

    BackgroundTask(parent)()
    assert drain(timeout=10)
    [failure] = [r for r in bgtask_log.records if r.levelname == "ERROR"]
    message = failure.getMessage()
    assert "child" in message
    assert "(spawned by tests.test_task_async.test_a_spawned_coroutine_that_fails" in message
    assert failure.exc_info is not None
    assert str(failure.exc_info[1]) == "the webhook answered 500"


@pytest.mark.parametrize("spawned", [False, True], ids=["task", "spawned"])
def test_an_async_task_that_blocks_the_loop_is_named_in_a_warning(
    spawned: bool, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """time.sleep inside async def holds every request's async tasks: one WARNING names it."""
    from bgtask import drain

    async def blocking() -> None:
        for _ in range(2):
            time.sleep(0.15)  # noqa: ASYNC251 (the mistake under test: blocking the loop)
            await asyncio.sleep(0)

    async def parent() -> None:
        asyncio.create_task(blocking())  # noqa: RUF006

    BackgroundTask(parent if spawned else blocking)()
    assert drain(timeout=10)
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "blocking" in warnings[0]
    assert "held the event loop for" in warnings[0]
    assert ("spawned by" in warnings[0]) is spawned
