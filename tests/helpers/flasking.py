"""What the Flask tests share: task functions, and the bgtask WARNING lines of a log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import flask

from .recording import request_id

if TYPE_CHECKING:
    import pytest


def send_welcome_email(events: list[str], email: str) -> None:
    """Record a welcome email."""
    events.append(f"welcome {email}")


def explode() -> None:
    """A task that fails."""
    msg = "smtp down"
    raise RuntimeError(msg)


def record_app(events: list[str]) -> None:
    """Record the current app's name and GREETING."""
    events.append(f"{flask.current_app.name} {flask.current_app.config['GREETING']}")


async def record_app_async(events: list[str]) -> None:
    """The same, async."""
    events.append(f"async {flask.current_app.name} {flask.current_app.config['GREETING']}")


def record_request_id(events: list[str], label: str) -> None:
    """Record ``label`` and the request id the task sees."""
    events.append(f"{label} {request_id.get()}")


def warnings_of(log: pytest.LogCaptureFixture) -> list[str]:
    """The bgtask WARNING lines, in order."""
    return [
        record.getMessage()
        for record in log.records
        if record.name == "bgtask" and record.levelno == logging.WARNING
    ]
