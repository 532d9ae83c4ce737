"""The project's tasks: each appends a JSON line to ``BGTASK_DJANGO_RECORD`` (the test reads it)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path


def record(task: str, **fields: object) -> None:
    line = {"task": task, "thread": threading.get_ident(), **fields}
    with open(os.environ["BGTASK_DJANGO_RECORD"], "a") as file:
        file.write(json.dumps(line) + "\n")


def send_welcome_email(email: str) -> None:
    """The seeds' sign-up email: under gunicorn it waits for the test to have read the
    response (the test then creates the file ``BGTASK_DJANGO_GO``)."""
    go = os.environ.get("BGTASK_DJANGO_GO")
    if go:
        deadline = time.monotonic() + 10
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        record("send_welcome_email", email=email, response_read=Path(go).exists())
        return
    record("send_welcome_email", email=email)


async def log_signup(email: str) -> None:
    record("log_signup", email=email)


def write_notification(email: str, message: str = "") -> None:
    record("write_notification", email=email, message=message)


def fail(reason: str) -> None:
    record("fail", reason=reason)
    raise RuntimeError(reason)


def count_signups(email: str) -> None:
    """Reads the database from the task: the committed row is there."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM signup WHERE email = %s", [email])
        (found,) = cursor.fetchone()
    record("count_signups", email=email, found=found)


def connection_open() -> None:
    """Whether this thread's database connection is still open when the task starts."""
    from django.db import connection

    record("connection_open", open=connection.connection is not None)


async def enqueue_later() -> None:
    """Leaves a coroutine behind that enqueues a django.tasks task once this request's
    collection has finished (and is sealed)."""
    import asyncio

    from bgtask._current import current_tasks

    collection = current_tasks.get()

    async def later() -> None:
        deadline = time.monotonic() + 10
        while collection is not None and not collection._sealed:
            if time.monotonic() > deadline:
                raise TimeoutError("the request's collection never finished")
            await asyncio.sleep(0.01)
        from .jobs import add

        add.enqueue(9, 9)

    asyncio.get_running_loop().create_task(later())  # bgtask tracks it


async def slow_report(email: str) -> None:
    """Waits far longer than any deadline; records whether it was cancelled."""
    import asyncio

    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        record("slow_report", cancelled=True)
        raise
