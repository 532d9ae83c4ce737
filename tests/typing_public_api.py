"""Type-checked only (``mypy --strict bgtask tests/typing_public_api.py``), never run.

ParamSpec ties a task's arguments to its function. With ``warn_unused_ignores`` each
``# type: ignore[...]`` below proves that mypy reports that mistake.
"""

from __future__ import annotations

import functools

import bgtask
from bgtask import BackgroundTask, BackgroundTasks, RetryPolicy


def send_email(to: str, subject: str = "") -> None:
    """A sync task function."""


async def send_email_async(to: str, *, subject: str = "") -> None:
    """An async task function."""


def notify(func: str) -> None:
    """A task whose parameter is called ``func``."""


class Mailer:
    """A class whose bound methods and instances are tasks."""

    def send(self, to: str) -> None:
        """A sync method."""

    async def __call__(self, to: str) -> None:
        """Instances are async callables."""


def check_background_task() -> None:
    """``BackgroundTask(func, *args, **kwargs)`` checks the arguments against ``func``."""
    BackgroundTask(send_email, "a@example.com")
    BackgroundTask(send_email, "a@example.com", subject="Hi")
    BackgroundTask(send_email, to="a@example.com")
    BackgroundTask(send_email_async, "a@example.com", subject="Hi")
    BackgroundTask(Mailer().send, "a@example.com")
    BackgroundTask(Mailer(), "a@example.com")
    BackgroundTask(functools.partial(send_email, "a@example.com"))

    BackgroundTask(send_email, 1)  # type: ignore[arg-type]
    BackgroundTask(send_email, "a@example.com", subject=2)  # type: ignore[arg-type]
    BackgroundTask(send_email_async, 1)  # type: ignore[arg-type]
    BackgroundTask(Mailer().send, 1)  # type: ignore[arg-type]
    BackgroundTask(send_email, "a@example.com", cc="b@example.com")  # type: ignore[call-arg]
    BackgroundTask(send_email_async, "a@example.com", cc="b")  # type: ignore[call-arg]
    BackgroundTask(send_email)  # type: ignore[call-arg]
    BackgroundTask(send_email, "a", "b", "c")  # type: ignore[call-arg]
    BackgroundTask(send_email_async, "a@example.com", "Hi")  # type: ignore[call-arg]


def check_add_task() -> None:
    """``BackgroundTasks().add_task`` checks the same way, and lets a task take ``func=``."""
    tasks = BackgroundTasks()
    tasks.add_task(send_email, "a@example.com", subject="Hi")
    tasks.add_task(send_email_async, "a@example.com", subject="Hi")
    tasks.add_task(notify, func="a")

    tasks.add_task(send_email, 1)  # type: ignore[arg-type]
    tasks.add_task(send_email_async, 1)  # type: ignore[arg-type]
    tasks.add_task(notify, func=1)  # type: ignore[arg-type]
    tasks.add_task(send_email, "a@example.com", cc="b@example.com")  # type: ignore[call-arg]
    tasks.add_task(send_email_async, "a@example.com", cc="b")  # type: ignore[call-arg]
    tasks.add_task(send_email)  # type: ignore[call-arg]


def check_collection() -> None:
    """A collection holds tasks and collections; ``continue_on_error`` is keyword-only."""
    inner = BackgroundTasks([BackgroundTask(send_email, "a@example.com")], continue_on_error=True)
    outer = BackgroundTasks([inner, BackgroundTask(send_email_async, "b@example.com")])
    outer()
    handle: BackgroundTask = outer.add_task(send_email, "c@example.com")
    state: str = handle.state
    BackgroundTasks([send_email])  # type: ignore[list-item]
    BackgroundTasks([], True)  # type: ignore[call-arg]
    BackgroundTask(42)  # type: ignore[arg-type]
    print(state)


def check_task_decorator() -> None:
    """``@backend.task`` returns the function itself: its signature is kept."""
    from celery import Celery
    from redis import Redis
    from rq import Queue

    from bgtask.celery import CeleryBackend
    from bgtask.rq import RQBackend

    for backend in (CeleryBackend(Celery()), RQBackend(Queue(connection=Redis()))):
        declared = backend.task(send_email)
        declared("a@example.com", subject="Hi")
        declared_async = backend.task(send_email_async)
        coroutine = declared_async("a@example.com", subject="Hi")
        coroutine.close()

        declared(1)  # type: ignore[arg-type]
        declared("a@example.com", cc="b")  # type: ignore[call-arg]
        declared_async("a@example.com", "Hi").close()  # type: ignore[call-arg]


@bgtask.task(timeout=5, retry=RetryPolicy(max=2))
def send_receipt(order_id: int, *, copy_to: str = "") -> None:
    """A task function with options: still checked against its own signature."""


def check_task_options_keep_the_signature() -> None:
    """``@bgtask.task`` returns the function itself, so mypy still checks its arguments."""
    tasks = BackgroundTasks()
    tasks.add_task(send_receipt, 42, copy_to="accounts@example.com")
    tasks.add_task(send_receipt, "42")  # type: ignore[arg-type]
    tasks.add_task(send_receipt, 42, cc="x")  # type: ignore[call-arg]
    group = tasks.add_group(limit=2)
    group.add_task(send_receipt, 7)
    group.add_task(send_receipt)  # type: ignore[call-arg]
