"""bgtask's pytest fixtures, loaded by pytest when bgtask is installed (entry point
``pytest11``). They cost nothing in a test that does not ask for them.

``bgtask_tasks``
    ``capture_tasks()`` around the test: the tasks queued by requests, in order; the test
    fails (at teardown) if a request's tasks never ran.
``bgtask_tasks_not_run``
    ``capture_tasks(run=False)``: recorded, not run.
``bgtask_client``
    ``bgtask_client(app)``: a test client for a Flask app or any WSGI app that closes every
    response, so a request's tasks have run when ``client.get(...)`` returns.

::

    def test_signup_sends_the_welcome_email(bgtask_client, bgtask_tasks):
        bgtask_client(app).post("/signup", data={"email": "a@b.c"})
        assert bgtask_tasks.queued(send_welcome_email, "a@b.c")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .testing import CapturedTasks, capture_tasks, closing_client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["bgtask_client", "bgtask_tasks", "bgtask_tasks_not_run"]


@pytest.fixture
def bgtask_tasks() -> Iterator[CapturedTasks]:
    """The tasks requests queue during the test; fails it if any of them never ran."""
    with capture_tasks() as queued:
        yield queued


@pytest.fixture
def bgtask_tasks_not_run() -> Iterator[CapturedTasks]:
    """The tasks requests queue during the test, recorded and not run."""
    with capture_tasks(run=False) as queued:
        yield queued


@pytest.fixture
def bgtask_client() -> Callable[[Any], Any]:
    """A factory: ``bgtask_client(app)`` is a test client closing every response."""

    def make(app: Any) -> Any:
        test_client = getattr(app, "test_client", None)
        if callable(test_client):  # a Flask app
            return closing_client(test_client())
        from werkzeug.test import Client

        return closing_client(Client(app))

    return make
