"""Django, Bottle and Falcon apps served through the middleware, as their wsgi.py would do.

Each view queues a sync and an async task through ``get_background_tasks(environ)`` (the
framework's own view of the environ) and through ``get_background_tasks()``. The tasks must
wait for ``close()``, run in order, and see the request's data. Each framework turns a view's
exception into a 500 response by default, so bgtask sees a normal response: the tasks queued
before the raise still run. Only an exception that reaches the WSGI layer discards them.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING
from wsgiref.util import FileWrapper

import bottle
import django.conf
import django.test
import falcon
import pytest
from django.core.wsgi import get_wsgi_application
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path
from werkzeug.test import Client

from bgtask import BackgroundTaskMiddleware, BackgroundTasks, get_background_tasks
from bgtask.testing import closing_client

from .helpers.wsgi import Call

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _typeshed.wsgi import WSGIApplication
    from django.http import HttpRequest

EMAIL = "a@b.c"
SIGNUP = {"PATH_INFO": "/signup", "QUERY_STRING": "email=a%40b.c"}
BOOM = {"PATH_INFO": "/boom", "QUERY_STRING": "email=a%40b.c"}

#: What the tasks did, in order. Module-level because Django resolves views by import.
recorded: list[str] = []


@pytest.fixture(autouse=True)
def _empty_record() -> Iterator[None]:
    """Each test starts and ends with an empty record."""
    recorded.clear()
    yield
    recorded.clear()


def send_welcome(source: str, email: str) -> None:
    recorded.append(f"sync {source} {email}")


async def log_signup(source: str, email: str) -> None:
    await asyncio.sleep(0)  # a real suspension: this runs on bgtask's loop
    recorded.append(f"async {source} {email}")


def queue_signup(tasks: BackgroundTasks, source: str, email: str) -> None:
    """What every view queues: one sync and one async task, both given the request's data."""
    tasks.add_task(send_welcome, source, email)
    tasks.add_task(log_signup, source, email)


#: Both ways of getting the collection fed the same one, in the order the view queued.
ALL_FOUR = [
    f"sync environ {EMAIL}",
    f"async environ {EMAIL}",
    f"sync contextvar {EMAIL}",
    f"async contextvar {EMAIL}",
]
#: What a failing view queued before it raised.
BEFORE_RAISE = [f"sync environ {EMAIL}", f"async environ {EMAIL}"]


def assert_tasks_wait_for_close(call: Call, expected: list[str]) -> bytes:
    """Iterate the body as a server writes it: nothing has run; close(): everything has."""
    body = call.body()
    assert recorded == []
    call.close()
    assert recorded == expected
    return body


def assert_discarded_with_one_warning(bgtask_log: pytest.LogCaptureFixture) -> None:
    """The view's two tasks never ran, and a WARNING each says why."""
    assert recorded == []
    first, second = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.WARNING]
    assert "send_welcome" in first
    assert "log_signup" in second
    assert all(" discarded: the application raised " in warning for warning in (first, second))


# Django: request.META is the WSGI environ.


def django_signup(request: HttpRequest) -> HttpResponse:
    email = request.GET["email"]
    queue_signup(get_background_tasks(request.META), "environ", email)
    queue_signup(get_background_tasks(), "contextvar", email)
    return JsonResponse({"status": "Signup successful"})


async def django_async_signup(request: HttpRequest) -> HttpResponse:
    # Under WSGI, Django runs an async view through asgiref, which copies the context.
    email = request.GET["email"]
    queue_signup(get_background_tasks(request.META), "environ", email)
    queue_signup(get_background_tasks(), "contextvar", email)
    return JsonResponse({"status": "Signup successful"})


def django_download(request: HttpRequest) -> FileResponse:
    queue_signup(get_background_tasks(), "contextvar", request.GET["email"])
    return FileResponse(io.BytesIO(b"file contents"))


def django_stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield b"first "
        # The app call has returned: only the environ still leads to the collection.
        queue_signup(get_background_tasks(request.META), "environ", request.GET["email"])
        yield b"second"

    queue_signup(get_background_tasks(), "contextvar", request.GET["email"])
    return StreamingHttpResponse(chunks())


def django_boom(request: HttpRequest) -> HttpResponse:
    queue_signup(get_background_tasks(request.META), "environ", request.GET["email"])
    raise ValueError("view failed")


#: This module is the ROOT_URLCONF.
urlpatterns = [
    path("signup", django_signup),
    path("async-signup", django_async_signup),
    path("download", django_download),
    path("stream", django_stream),
    path("boom", django_boom),
]


@pytest.fixture(scope="module")
def django_app() -> Iterator[WSGIApplication]:
    """A Django project's wsgi.py ``application``, wrapped; its settings restored afterwards."""
    # django.conf.settings, not imported by name: --doctest-modules would probe the lazy
    # object for __wrapped__, which raises before settings are configured.
    if not django.conf.settings.configured:
        # Settings are process-wide and configure() works once: set only what Django needs,
        # and keep Django away from the logging configuration that other tests rely on.
        django.conf.settings.configure(
            USE_TZ=True,
            INSTALLED_APPS=[],
            DATABASES={},
            MIDDLEWARE=[],
            LOGGING_CONFIG=None,
        )
        django.setup()
    # Whoever configured settings, these tests need these values, and nobody else keeps them.
    with override_settings(
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        DEBUG=False,
        DEBUG_PROPAGATE_EXCEPTIONS=False,
    ):
        yield BackgroundTaskMiddleware(get_wsgi_application())


def test_django_view_tasks_run_in_order_after_close(django_app: WSGIApplication) -> None:
    """A Django view's tasks, queued via request.META and without environ, run in close()."""
    call = Call(django_app, **SIGNUP)
    body = assert_tasks_wait_for_close(call, ALL_FOUR)
    assert call.status == "200 OK"
    assert body == b'{"status": "Signup successful"}'


def test_django_async_view_tasks_run_in_order_after_close(django_app: WSGIApplication) -> None:
    """An async def Django view under WSGI finds the collection both ways too."""
    call = Call(django_app, **{**SIGNUP, "PATH_INFO": "/async-signup"})
    body = assert_tasks_wait_for_close(call, ALL_FOUR)
    assert call.status == "200 OK"
    assert body == b'{"status": "Signup successful"}'


def test_django_file_response_keeps_the_server_file_wrapper(
    django_app: WSGIApplication,
) -> None:
    """A FileResponse goes out as the server's wsgi.file_wrapper; its tasks still wait."""
    environ = {**SIGNUP, "PATH_INFO": "/download", "wsgi.file_wrapper": FileWrapper}
    call = Call(django_app, **environ)
    assert isinstance(call.result, FileWrapper)
    body = assert_tasks_wait_for_close(call, ALL_FOUR[2:])
    assert body == b"file contents"


def test_django_streaming_body_queues_more_through_request_meta(
    django_app: WSGIApplication,
) -> None:
    """A StreamingHttpResponse generator adds tasks via request.META; all run after the end."""
    call = Call(django_app, **{**SIGNUP, "PATH_INFO": "/stream"})
    body = assert_tasks_wait_for_close(call, ALL_FOUR[2:] + ALL_FOUR[:2])
    assert body == b"first second"


def test_django_view_raising_still_runs_its_tasks_after_the_500(
    django_app: WSGIApplication, caplog: pytest.LogCaptureFixture
) -> None:
    """Django answers 500 itself, so bgtask sees a response and runs what was queued."""
    call = Call(django_app, **BOOM)
    body = assert_tasks_wait_for_close(call, BEFORE_RAISE)
    assert call.status == "500 Internal Server Error"
    assert b"Server Error (500)" in body
    errors = [r for r in caplog.records if r.name == "django.request"]
    assert [r.levelno for r in errors] == [logging.ERROR]
    assert not [r for r in caplog.records if r.name == "bgtask" and r.levelno >= logging.WARNING]


def test_django_propagated_exception_discards_the_tasks(
    django_app: WSGIApplication, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """With DEBUG_PROPAGATE_EXCEPTIONS the error reaches WSGI: tasks discarded, warned."""
    with (
        override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True),
        pytest.raises(ValueError, match="view failed"),
    ):
        Call(django_app, **BOOM)
    assert_discarded_with_one_warning(bgtask_log)


def test_django_test_client_bypasses_wsgi_py_so_views_find_no_collection(
    django_app: WSGIApplication,
) -> None:
    """django.test.Client calls Django's handler, not wsgi.py: no middleware, RuntimeError."""
    with pytest.raises(RuntimeError, match="no bgtask collection here"):
        django.test.Client().get("/signup", {"email": EMAIL})
    assert recorded == []


# Bottle: bottle.request.environ is the WSGI environ.


def make_bottle_app(*, catchall: bool = True) -> WSGIApplication:
    app = bottle.Bottle()
    app.config["catchall"] = catchall  # Bottle(catchall=False) is deprecated since 0.13

    @app.get("/signup")  # type: ignore[untyped-decorator]  # bottle ships no types
    def signup() -> dict[str, str]:
        email = bottle.request.query["email"]
        queue_signup(get_background_tasks(bottle.request.environ), "environ", email)
        queue_signup(get_background_tasks(), "contextvar", email)
        return {"status": "Signup successful"}

    @app.get("/boom")  # type: ignore[untyped-decorator]  # bottle ships no types
    def boom() -> str:
        queue_signup(get_background_tasks(bottle.request.environ), "environ", EMAIL)
        raise ValueError("view failed")

    return BackgroundTaskMiddleware(app)


@pytest.fixture
def bottle_app() -> WSGIApplication:
    """A Bottle() instance, wrapped."""
    return make_bottle_app()


def test_bottle_view_tasks_run_in_order_after_close(bottle_app: WSGIApplication) -> None:
    """A Bottle route's tasks, queued via request.environ and without environ, run in close()."""
    call = Call(bottle_app, **SIGNUP)
    body = assert_tasks_wait_for_close(call, ALL_FOUR)
    assert call.status == "200 OK"
    assert body == b'{"status": "Signup successful"}'


def test_bottle_view_raising_still_runs_its_tasks_after_the_500(
    bottle_app: WSGIApplication,
) -> None:
    """Bottle's catchall answers 500 itself, so the tasks queued before the raise run."""
    call = Call(bottle_app, **BOOM)
    body = assert_tasks_wait_for_close(call, BEFORE_RAISE)
    assert call.status == "500 Internal Server Error"
    assert b"Internal Server Error" in body
    assert "ValueError: view failed" in call.environ["wsgi.errors"].getvalue()


def test_bottle_without_catchall_discards_the_tasks(bgtask_log: pytest.LogCaptureFixture) -> None:
    """With catchall=False the error reaches WSGI: tasks discarded, warned."""
    with pytest.raises(ValueError, match="view failed"):
        Call(make_bottle_app(catchall=False), **BOOM)
    assert_discarded_with_one_warning(bgtask_log)


# Falcon: req.env is the WSGI environ.


class FalconSignup:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        email = req.get_param("email", required=True)
        queue_signup(get_background_tasks(req.env), "environ", email)
        queue_signup(get_background_tasks(), "contextvar", email)
        resp.media = {"status": "Signup successful"}


class FalconBoom:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        queue_signup(get_background_tasks(req.env), "environ", req.get_param("email") or "")
        raise ValueError("view failed")


@pytest.fixture
def falcon_app() -> WSGIApplication:
    """A falcon.App, wrapped."""
    app = falcon.App()
    app.add_route("/signup", FalconSignup())
    app.add_route("/boom", FalconBoom())
    return BackgroundTaskMiddleware(app)


def test_falcon_responder_tasks_run_in_order_after_close(falcon_app: WSGIApplication) -> None:
    """A Falcon responder's tasks, queued via req.env and without environ, run in close()."""
    call = Call(falcon_app, **SIGNUP)
    body = assert_tasks_wait_for_close(call, ALL_FOUR)
    assert call.status == "200 OK"
    assert body == b'{"status": "Signup successful"}'


def test_falcon_responder_raising_still_runs_its_tasks_after_the_500(
    falcon_app: WSGIApplication,
) -> None:
    """Falcon's default error handler answers 500, so the tasks queued before the raise run."""
    call = Call(falcon_app, **BOOM)
    body = assert_tasks_wait_for_close(call, BEFORE_RAISE)
    assert call.status == "500 Internal Server Error"
    assert b"500 Internal Server Error" in body
    assert "ValueError: view failed" in call.environ["wsgi.errors"].getvalue()


def test_falcon_http_error_still_runs_the_tasks() -> None:
    """A responder raising falcon.HTTPError gets its error response, and its tasks run."""

    class Refuse:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            queue_signup(get_background_tasks(), "contextvar", EMAIL)
            raise falcon.HTTPForbidden(title="no")

    app = falcon.App()
    app.add_route("/refuse", Refuse())
    call = Call(BackgroundTaskMiddleware(app), PATH_INFO="/refuse")
    assert_tasks_wait_for_close(call, [f"sync contextvar {EMAIL}", f"async contextvar {EMAIL}"])
    assert call.status == "403 Forbidden"


# Every stack, through Werkzeug's test client as the README's testing section suggests.


@pytest.mark.parametrize("stack", ["django_app", "bottle_app", "falcon_app"])
def test_closing_client_runs_the_tasks_of_every_stack(
    stack: str, request: pytest.FixtureRequest
) -> None:
    """closing_client(Client(app)) has run each framework's tasks when the call returns."""
    app: WSGIApplication = request.getfixturevalue(stack)
    response = closing_client(Client(app)).get("/signup", query_string={"email": EMAIL})
    assert response.status_code == 200
    assert response.get_json() == {"status": "Signup successful"}
    assert recorded == ALL_FOUR
