"""Shared fixtures: the bgtask logger captured at DEBUG, and where tasks record what ran."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from .helpers.readme import ScratchProject
from .helpers.recording import request_id

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import flask
    from flask.testing import FlaskClient

#: Imported only where a test means to catch it being imported (never by collection).
collect_ignore = ["apps/import_side_effect.py", "apps/readme_project", "apps/djangoproject"]


@pytest.fixture
def bgtask_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, recording the ``bgtask`` logger from DEBUG up."""
    with caplog.at_level(logging.DEBUG, logger="bgtask"):
        yield caplog


@pytest.fixture
def events() -> list[str]:
    """What in-process tasks record (``tests.helpers.recording.record``), in order."""
    return []


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    """The file tasks in other processes append their JSON event lines to."""
    return tmp_path / "events.jsonl"


@pytest.fixture(autouse=True)
def _fresh_request_id() -> Iterator[None]:
    """Views set the request id in the test's own context (in-process WSGI calls run in it):
    each test starts from the default again."""
    token = request_id.set("-")
    yield
    request_id.reset(token)


@pytest.fixture
def app() -> flask.Flask:
    """A Flask app with ``BgTask`` installed."""
    import flask

    from bgtask.flask import BgTask

    app = flask.Flask("tests.flask_app")
    BgTask(app)
    return app


@pytest.fixture
def client(app: flask.Flask) -> FlaskClient:
    """``app``'s test client, closing every response (so tasks have run when it returns)."""
    from bgtask.testing import closing_client

    return closing_client(app.test_client())


@pytest.fixture
def readme_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScratchProject]:
    """A scratch directory holding ``yourapp`` (what README snippets import), importable, its
    task recording to a file; snippets are written beside it. Forgotten afterwards."""
    project = ScratchProject(tmp_path / "project")
    monkeypatch.syspath_prepend(str(project.root))
    monkeypatch.setenv("YOURAPP_RECORD", str(project.record))
    try:
        yield project
    finally:
        project.forget()
