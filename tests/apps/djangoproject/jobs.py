"""The project's ``django.tasks`` tasks (Django 6, or the django-tasks backport)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from .tasks import record

try:
    tasks: Any = importlib.import_module("django.tasks")
except ImportError:
    tasks = importlib.import_module("django_tasks")
task: Any = tasks.task
TaskContext: Any = tasks.TaskContext


@task()  # type: ignore[untyped-decorator]  # (Any: two possible modules)
def add(a: int, b: int) -> int:
    record("add", a=a, b=b)
    return a + b


@task()  # type: ignore[untyped-decorator]  # (Any: two possible modules)
async def greet(name: str) -> str:
    await asyncio.sleep(0)  # a real suspension, on bgtask's loop
    record("greet", name=name)
    return f"hello {name}"


@task(takes_context=True)  # type: ignore[untyped-decorator]  # (Any: two possible modules)
def with_context(context: TaskContext, label: str) -> dict[str, Any]:
    record("with_context", label=label)
    return {"id": context.task_result.id, "attempt": context.attempt}


@task()  # type: ignore[untyped-decorator]  # (Any: two possible modules)
def explode(reason: str) -> None:
    record("explode", reason=reason)
    raise ValueError(reason)


@task()  # type: ignore[untyped-decorator]  # (Any: two possible modules)
def not_json() -> object:
    return object()


@task()  # type: ignore[untyped-decorator]  # (Any: two possible modules)
async def aexplode(reason: str) -> None:
    await asyncio.sleep(0)
    raise ValueError(reason)
