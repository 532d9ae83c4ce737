"""The WSGI layer, through real WSGI calls: when tasks run, and what they never break."""

from __future__ import annotations

import gc
import io
import logging
import threading
from typing import TYPE_CHECKING, Any
from wsgiref.util import FileWrapper
from wsgiref.validate import validator

import pytest

from bgtask import BackgroundTaskMiddleware, BackgroundTasks, get_background_tasks

from .helpers.recording import request_id
from .helpers.wsgi import Call, serve, text_app

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def queuing_app(
    events: list[str], *names: str, body: Callable[[], Any] | None = None
) -> WSGIApplication:
    """An app that queues one task per name, each appending it to ``events``."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        for name in names:
            get_background_tasks().add_task(events.append, name)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body() if body is not None else [b"ok"]

    return app


def test_each_request_gets_a_fresh_collection_in_the_environ() -> None:
    """environ["bgtask.tasks"] is a new BackgroundTasks for every request."""
    seen: list[BackgroundTasks] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["bgtask.tasks"])
        assert get_background_tasks() is environ["bgtask.tasks"]
        assert get_background_tasks(environ) is environ["bgtask.tasks"]
        start_response("200 OK", [])
        return [b""]

    wrapped = BackgroundTaskMiddleware(app)
    serve(wrapped)
    serve(wrapped)
    assert len(seen) == 2
    assert all(isinstance(tasks, BackgroundTasks) for tasks in seen)
    assert seen[0] is not seen[1]


def test_tasks_run_in_close_after_the_body_was_iterated() -> None:
    """Nothing runs while the server writes the body; everything runs in close()."""
    events: list[str] = []
    call = Call(BackgroundTaskMiddleware(queuing_app(events, "task")))
    assert call.body() == b"ok"
    assert events == []
    call.close()
    assert events == ["task"]


def test_tasks_queued_from_a_helper_deep_in_the_call_stack_run() -> None:
    """get_background_tasks() works in any function the app calls."""
    events: list[str] = []

    def dependency(query: str) -> str:
        get_background_tasks().add_task(events.append, f"found {query}")
        return query

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        dependency("q")
        get_background_tasks().add_task(events.append, "handler")
        start_response("200 OK", [])
        return [b""]

    serve(BackgroundTaskMiddleware(app))
    assert events == ["found q", "handler"]


def test_close_twice_runs_the_tasks_once() -> None:
    """A second close() runs nothing."""
    events: list[str] = []
    call = Call(BackgroundTaskMiddleware(queuing_app(events, "once")))
    call.serve()
    call.close()
    assert events == ["once"]


def test_app_iterable_is_closed_before_the_tasks_run() -> None:
    """The app's own close() comes first, then the tasks."""
    events: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"body"

        def close(self) -> None:
            events.append("app closed")

    serve(BackgroundTaskMiddleware(queuing_app(events, "task", body=Body)))
    assert events == ["app closed", "task"]


def test_app_close_raising_still_runs_tasks_then_propagates_unchanged() -> None:
    """The app's close() error propagates as is, after the tasks ran."""
    events: list[str] = []
    error = OSError("disk gone")

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"body"

        def close(self) -> None:
            raise error

    call = Call(BackgroundTaskMiddleware(queuing_app(events, "task", body=Body)))
    call.body()
    with pytest.raises(OSError, match="disk gone") as raised:
        call.close()
    assert raised.value is error
    assert events == ["task"]


def test_failing_task_never_escapes_close(bgtask_log: pytest.LogCaptureFixture) -> None:
    """close() returns normally when a task raises; the failure is logged."""

    def explode() -> None:
        raise ValueError("boom")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(explode)
        start_response("200 OK", [])
        return [b""]

    serve(BackgroundTaskMiddleware(app))
    failures = [r for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "explode" in failures[0].getMessage()


def test_a_failing_request_does_not_touch_the_next_requests_tasks() -> None:
    """One request's failed task leaves the next request's tasks alone."""
    events: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if environ["PATH_INFO"] == "/fail":
            get_background_tasks().add_task(int, "not a number")
        get_background_tasks().add_task(events.append, environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    wrapped = BackgroundTaskMiddleware(app)
    serve(wrapped, PATH_INFO="/fail")
    serve(wrapped, PATH_INFO="/next")
    assert events == ["/next"]


def test_len_is_forwarded_when_the_app_iterable_has_one() -> None:
    """wsgiref sets Content-Length from len(result): keep it."""
    call = Call(BackgroundTaskMiddleware(text_app(b"hello")))
    assert len(call.result) == 1  # type: ignore[arg-type]
    call.serve()


def test_len_is_absent_when_the_app_iterable_has_none() -> None:
    """A generator body gives the wrapper no __len__ either."""

    def gen() -> Iterator[bytes]:
        yield b"x"

    call = Call(BackgroundTaskMiddleware(queuing_app([], body=gen)))
    assert not hasattr(call.result, "__len__")
    assert call.serve() == b"x"


def test_file_wrapper_is_returned_itself_with_its_close_chained() -> None:
    """The server's file_wrapper instance comes back unwrapped, so sendfile still applies."""
    events: list[str] = []
    payload = io.BytesIO(b"file contents")
    returned: list[object] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        get_background_tasks().add_task(events.append, "after file")
        start_response("200 OK", [])
        wrapper = environ["wsgi.file_wrapper"](payload, 4)
        returned.append(wrapper)
        return wrapper

    call = Call(BackgroundTaskMiddleware(app), **{"wsgi.file_wrapper": FileWrapper})
    assert call.result is returned[0]
    assert type(call.result) is FileWrapper
    assert call.body() == b"file contents"
    assert events == []
    call.close()
    assert payload.closed
    assert events == ["after file"]


def test_file_wrapper_with_slots_is_wrapped_and_still_runs_tasks() -> None:
    """A wrapper whose close cannot be replaced is wrapped instead; tasks still run."""

    class SlottedWrapper:
        __slots__ = ("filelike",)

        def __init__(self, filelike: io.BytesIO, block_size: int = 8192) -> None:
            self.filelike = filelike

        def __iter__(self) -> Iterator[bytes]:
            yield self.filelike.read()

        def close(self) -> None:
            self.filelike.close()

    events: list[str] = []
    payload = io.BytesIO(b"data")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        get_background_tasks().add_task(events.append, "task")
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](payload)

    call = Call(BackgroundTaskMiddleware(app), **{"wsgi.file_wrapper": SlottedWrapper})
    assert not isinstance(call.result, SlottedWrapper)
    assert call.serve() == b"data"
    assert payload.closed
    assert events == ["task"]


def test_app_raising_discards_tasks_with_a_warning_each(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Tasks of a failed handler are dropped, each named in a WARNING; the error propagates."""
    events: list[str] = []
    error = LookupError("no such user")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        get_background_tasks().add_task(events.append, "secret-token-1")
        get_background_tasks().add_task(events.append, "secret-token-2")
        raise error

    with pytest.raises(LookupError) as raised:
        Call(BackgroundTaskMiddleware(app))
    assert raised.value is error
    assert events == []
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == ["background task list.append discarded: the application raised LookupError"] * 2
    )
    assert "secret-token" not in bgtask_log.text


def test_body_raising_discards_tasks(bgtask_log: pytest.LogCaptureFixture) -> None:
    """A body that raises mid-iteration drops the request's tasks."""
    events: list[str] = []

    def broken_body() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("render failed")

    call = Call(BackgroundTaskMiddleware(queuing_app(events, "task", body=broken_body)))
    with pytest.raises(RuntimeError, match="render failed"):
        call.body()
    call.close()
    assert events == []
    assert "the response body raised" in bgtask_log.text


def test_client_disconnect_mid_stream_still_runs_the_tasks() -> None:
    """A server that stops iterating early still closes: the view's work happened."""
    events: list[str] = []

    def stream() -> Iterator[bytes]:
        try:
            yield from (b"a", b"b", b"c")
        except GeneratorExit:
            events.append("generator closed")
            raise

    call = Call(BackgroundTaskMiddleware(queuing_app(events, "task", body=stream)))
    iterator = iter(call.result)
    assert next(iterator) == b"a"
    call.close()  # the client went away after the first chunk
    assert events == ["generator closed", "task"]


def test_streaming_body_can_queue_tasks_with_the_environ() -> None:
    """Inside a streaming generator, get_background_tasks(environ) works; tasks run last."""
    events: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])

        def stream() -> Iterator[bytes]:
            for i in range(3):
                events.append(f"chunk {i}")
                yield b"chunk"
            get_background_tasks(environ).add_task(events.append, "queued while streaming")

        return stream()

    serve(BackgroundTaskMiddleware(app))
    assert events == ["chunk 0", "chunk 1", "chunk 2", "queued while streaming"]


def test_get_background_tasks_in_a_streaming_body_without_environ_explains() -> None:
    """The contextvar is reset once the app call returns: the error says to pass environ."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])

        def stream() -> Iterator[bytes]:
            get_background_tasks()
            yield b""

        return stream()

    call = Call(BackgroundTaskMiddleware(app))
    with pytest.raises(RuntimeError, match="pass the request's environ"):
        call.body()
    call.close()


def test_outside_a_request_get_background_tasks_says_how_to_install() -> None:
    """No middleware: a RuntimeError naming BackgroundTaskMiddleware."""
    with pytest.raises(RuntimeError, match="BackgroundTaskMiddleware"):
        get_background_tasks()
    with pytest.raises(RuntimeError, match="BackgroundTaskMiddleware"):
        get_background_tasks({})


def test_contextvar_is_isolated_between_consecutive_requests_on_one_thread() -> None:
    """A thread reused for the next request never sees the previous collection."""
    seen: list[BackgroundTasks] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        seen.append(get_background_tasks())
        start_response("200 OK", [])
        return [b""]

    def outside_a_request() -> bool:
        try:
            get_background_tasks()
        except RuntimeError:
            return True
        return False

    def bare(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"bare" if outside_a_request() else b"leaked"]

    wrapped = BackgroundTaskMiddleware(app)
    serve(wrapped)
    assert outside_a_request()
    assert serve(bare) == b"bare"
    serve(wrapped)
    assert seen[0] is not seen[1]
    assert outside_a_request()


def test_nested_middlewares_share_one_collection_and_run_it_once() -> None:
    """Two middlewares around one app: one collection, each task runs once."""
    events: list[str] = []
    collections: list[BackgroundTasks] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        collections.append(get_background_tasks())
        get_background_tasks().add_task(events.append, "once")
        start_response("200 OK", [])
        return [b""]

    inner = BackgroundTaskMiddleware(app)

    def between(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        collections.append(environ["bgtask.tasks"])
        return inner(dict(environ), start_response)  # a middleware that copies the environ

    serve(BackgroundTaskMiddleware(between))
    assert events == ["once"]
    assert collections[0] is collections[1]


def test_tasks_see_request_scoped_contextvars() -> None:
    """A value set in the request (a request id) reaches the task."""
    seen: list[str] = []

    def record() -> None:
        seen.append(request_id.get())

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        request_id.set(environ["PATH_INFO"])
        get_background_tasks().add_task(record)
        start_response("200 OK", [])
        return [b""]

    wrapped = BackgroundTaskMiddleware(app)
    serve(wrapped, PATH_INFO="/one")
    serve(wrapped, PATH_INFO="/two")
    assert seen == ["/one", "/two"]


def test_queuing_after_the_tasks_ran_raises() -> None:
    """A late add_task is refused loudly instead of being lost."""
    kept: list[BackgroundTasks] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        kept.append(get_background_tasks())
        start_response("200 OK", [])
        return [b""]

    serve(BackgroundTaskMiddleware(app))
    with pytest.raises(RuntimeError, match="already run"):
        kept[0].add_task(print)


def test_unclosed_response_logs_that_its_tasks_did_not_run(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A response dropped without close() says so, pointing at closing_client."""
    events: list[str] = []
    call = Call(BackgroundTaskMiddleware(queuing_app(events, "never")))
    call.body()
    del call
    assert events == []
    assert "closing_client" in bgtask_log.text
    assert "discarded: the response was garbage-collected without close()" in bgtask_log.text


def test_unclosed_streaming_response_warns_about_tasks_queued_from_its_body(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Tasks queued by a generator body while it was iterated are reported too."""
    events: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first chunk"
        get_background_tasks(environ).add_task(events.append, "from the body")
        yield b"last chunk"

    call = Call(BackgroundTaskMiddleware(app))
    assert call.body() == b"first chunklast chunk"
    del call
    gc.collect()
    assert events == []
    assert "discarded: the response was garbage-collected without close()" in bgtask_log.text


def test_requests_from_many_threads_keep_their_own_tasks() -> None:
    """Concurrent requests on 16 threads: every task runs once, with its own request's data."""
    done: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16, timeout=10)

    def record(path: str) -> None:
        with lock:
            done.append((path, request_id.get()))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        request_id.set(environ["PATH_INFO"])
        get_background_tasks().add_task(record, environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b""]

    wrapped = BackgroundTaskMiddleware(app)

    def client(n: int) -> None:
        barrier.wait()
        for i in range(50):
            serve(wrapped, PATH_INFO=f"/{n}/{i}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(done) == 16 * 50
    assert all(path == seen for path, seen in done)
    assert len({path for path, _ in done}) == 16 * 50


def test_middleware_passes_wsgiref_validator_on_both_sides() -> None:
    """validator(middleware(validator(app))) raises no WSGI violation, streaming or not."""
    events: list[str] = []

    def stream() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    for body in (None, stream):
        app = queuing_app(events, "task", body=body)
        checked = validator(BackgroundTaskMiddleware(validator(app)))
        call = Call(checked)
        call.serve()
    assert events == ["task", "task"]


def test_app_iterable_is_closed_once_when_the_client_leaves_mid_stream() -> None:
    """Werkzeug's ClosingIterator runs its callbacks on every close(): bgtask closes once."""
    closes: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a"
            yield b"b"

        def close(self) -> None:
            closes.append("closed")

    call = Call(BackgroundTaskMiddleware(queuing_app([], body=Body)))
    iterator = iter(call.result)
    assert next(iterator) == b"a"
    call.close()
    del iterator, call
    gc.collect()
    assert closes == ["closed"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_task_queueing_itself_forever_stops_at_the_collections_limit(
    kind: str, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """It fails at BackgroundTasks.max_tasks with an ERROR naming it; close() returns."""
    runs: list[int] = []

    def again() -> None:
        runs.append(1)
        get_background_tasks_of_request().add_task(again)

    async def again_async() -> None:
        runs.append(1)
        get_background_tasks_of_request().add_task(again_async)

    environs: list[WSGIEnvironment] = []

    def get_background_tasks_of_request() -> BackgroundTasks:
        return get_background_tasks(environs[0])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        environs.append(environ)
        get_background_tasks().add_task(again if kind == "sync" else again_async)
        start_response("200 OK", [])
        return [b"ok"]

    serve(BackgroundTaskMiddleware(app))
    assert len(runs) == BackgroundTasks.max_tasks
    [failure] = [r for r in bgtask_log.records if r.levelno == logging.ERROR]
    assert "again" in failure.getMessage()
    assert failure.exc_info is not None
    assert "already took 10000 tasks" in str(failure.exc_info[1])
