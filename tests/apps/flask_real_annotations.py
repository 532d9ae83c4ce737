"""Flask views whose annotations are real classes, for ``tests/test_flask_injection.py``.

This module deliberately has no ``from __future__ import annotations``: here
``tasks: BackgroundTasks`` is the class itself, not the string ``"BackgroundTasks"``.
"""

from typing import Annotated

import flask
from flask.views import MethodView

from bgtask import BackgroundTasks


def record(events: list[str], label: str) -> None:
    events.append(label)


def register_views(app: flask.Flask, events: list[str]) -> None:
    """Add a plain, an ``Annotated``, an async and a ``MethodView`` view to ``app``."""

    @app.get("/real/<name>")
    def real_plain(name: str, tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, f"plain {name}")
        return "plain"

    @app.get("/real-annotated")
    def real_annotated(tasks: Annotated[BackgroundTasks, "injected by bgtask"]) -> str:
        tasks.add_task(record, events, "annotated")
        return "annotated"

    @app.get("/real-async")
    async def real_async(tasks: BackgroundTasks) -> str:
        tasks.add_task(record, events, "async")
        return "async"

    class RealItems(MethodView):
        def get(self, tasks: BackgroundTasks) -> str:
            tasks.add_task(record, events, "method view get")
            return "get"

        def post(self, tasks: BackgroundTasks) -> str:
            tasks.add_task(record, events, "method view post")
            return "post"

    app.add_url_rule("/real-items", view_func=RealItems.as_view("real_items"))
