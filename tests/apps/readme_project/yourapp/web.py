"""``yourapp.web``: the app factory ``worker_context(create_app)`` is given in the README."""

from __future__ import annotations

import flask


def create_app() -> flask.Flask:
    """The web app, as a factory builds it (the workers build it too)."""
    return flask.Flask("yourapp")
