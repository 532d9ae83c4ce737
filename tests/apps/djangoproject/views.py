"""The project's views: the seeds' scenarios, errors, statuses and transactions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.http import FileResponse, Http404, HttpResponse, JsonResponse, StreamingHttpResponse

from bgtask import BackgroundTasks, get_background_tasks

from .tasks import (
    connection_open,
    count_signups,
    fail,
    log_signup,
    send_welcome_email,
    slow_report,
    write_notification,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.http import HttpRequest

TABLE = "CREATE TABLE IF NOT EXISTS signup (email VARCHAR(200))"


def create_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(TABLE)


def tasks_of(request: HttpRequest) -> BackgroundTasks:
    tasks: BackgroundTasks = request.background_tasks
    return tasks


def insert(email: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO signup (email) VALUES (%s)", [email])


def signup(request: HttpRequest) -> JsonResponse:
    """Seed: the welcome email goes after the response; an async task follows it."""
    email = request.POST["email"]
    tasks_of(request).add_task(send_welcome_email, email)
    get_background_tasks().add_task(log_signup, email)
    return JsonResponse({"status": "Signup successful"})


def log_query(q: str | None) -> str | None:
    """Seed: a dependency queues into the same collection."""
    if q:
        get_background_tasks().add_task(write_notification, "log", message=f"found query: {q}")
    return q


def items(request: HttpRequest) -> JsonResponse:
    """Seed: tasks from the view and from a helper merge in call order."""
    tasks_of(request).add_task(write_notification, "first", message="view")
    q = log_query(request.GET.get("q"))
    tasks_of(request).add_task(write_notification, "last", message="view")
    return JsonResponse({"q": q})


def failing(request: HttpRequest) -> HttpResponse:
    """Seed: a failing task stops the rest."""
    tasks = tasks_of(request)
    tasks.add_task(write_notification, "before")
    tasks.add_task(fail, "smtp down")
    tasks.add_task(write_notification, "after")
    return HttpResponse("ok")


def boom(request: HttpRequest) -> HttpResponse:
    tasks_of(request).add_task(write_notification, "boom")
    raise ValueError("the view failed")


def unavailable(request: HttpRequest) -> HttpResponse:
    tasks_of(request).add_task(write_notification, "503")
    return HttpResponse("maintenance", status=503)


def download(request: HttpRequest) -> FileResponse:
    tasks_of(request).add_task(write_notification, "download")
    return FileResponse(open(__file__, "rb"))


def committed(request: HttpRequest) -> HttpResponse:
    """A row and its task in one atomic block that commits: the task runs, sees the row."""
    email = request.POST["email"]
    with transaction.atomic():
        insert(email)
        tasks_of(request).add_task(count_signups, email)
    return HttpResponse("ok")


def rolled_back(request: HttpRequest) -> HttpResponse:
    """The block rolls back: its task is discarded; the one queued outside it runs."""
    email = request.POST["email"]
    tasks_of(request).add_task(write_notification, email, message="outside")
    try:
        with transaction.atomic():
            insert(email)
            tasks_of(request).add_task(count_signups, email)
            raise ValueError("validation failed")
    except ValueError:
        pass
    return HttpResponse("rolled back")


def savepoint(request: HttpRequest) -> HttpResponse:
    """A savepoint rolls back inside a transaction that commits: only its task goes."""
    email = request.POST["email"]
    with transaction.atomic():
        insert(email)
        tasks_of(request).add_task(write_notification, email, message="outer")
        try:
            with transaction.atomic():
                tasks_of(request).add_task(write_notification, email, message="inner")
                raise ValueError("inner failed")
        except ValueError:
            pass
    return HttpResponse("ok")


def set_rollback(request: HttpRequest) -> HttpResponse:
    """Under ATOMIC_REQUESTS: the view marks the request's transaction for rollback."""
    email = request.POST["email"]
    insert(email)
    tasks_of(request).add_task(count_signups, email)
    transaction.set_rollback(True)
    return HttpResponse("not saved")


def atomic_boom(request: HttpRequest) -> HttpResponse:
    """Under ATOMIC_REQUESTS with DISCARD_ON_ERROR off: the rollback still discards."""
    email = request.POST["email"]
    insert(email)
    tasks_of(request).add_task(count_signups, email)
    raise ValueError("the view failed")


def missing(request: HttpRequest) -> HttpResponse:
    tasks_of(request).add_task(write_notification, "404")
    raise Http404("no such thing")


def connections_view(request: HttpRequest) -> HttpResponse:
    """A task that used the database, then one that looks at the connection."""
    tasks = tasks_of(request)
    tasks.add_task(count_signups, "nobody")
    tasks.add_task(connection_open)
    return HttpResponse("ok")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: its task runs though the view's were discarded."""
    get_background_tasks().add_task(write_notification, "handler500")
    return HttpResponse("error page", status=500)


def exploding_middleware(get_response: Any) -> Any:
    """Below bgtask's middleware: for /middleware-boom it queues a task, then raises."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path == "/middleware-boom":
            get_background_tasks().add_task(write_notification, "middleware")
            raise RuntimeError("the middleware failed")
        response: HttpResponse = get_response(request)
        return response

    return middleware


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """?fail=1: the body raises after its first chunk."""
    tasks_of(request).add_task(write_notification, "stream")
    failing = request.GET.get("fail") == "1"

    def chunks() -> Iterator[bytes]:
        yield b"first "
        if failing:
            raise RuntimeError("the body failed")
        get_background_tasks(request.META).add_task(write_notification, "from the body")
        yield b"second"

    return StreamingHttpResponse(chunks())


async def async_signup(request: HttpRequest) -> JsonResponse:
    """An async view (asgiref runs it under WSGI): both accessors work."""
    get_background_tasks().add_task(log_signup, "async@b.c")
    tasks_of(request).add_task(send_welcome_email, "async@b.c")
    return JsonResponse({"status": "ok"})


def slow(request: HttpRequest) -> JsonResponse:
    """A task with no deadline of its own: settings.BGTASK['TASK_TIMEOUT'] gives it one."""
    tasks_of(request).add_task(slow_report, "a@example.com")
    return JsonResponse({"status": "queued"})
