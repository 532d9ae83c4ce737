"""The project's django.tasks views (AfterResponseBackend): a module of their own, since
the project's jobs need django.tasks or the backport."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.http import JsonResponse

from . import jobs, views
from .tasks import enqueue_later, write_notification

if TYPE_CHECKING:
    from django.http import HttpRequest


def _ids(*results: Any) -> JsonResponse:
    return JsonResponse({"ids": [r.id for r in results], "statuses": [r.status for r in results]})


def tasks_enqueue(request: HttpRequest) -> JsonResponse:
    """Enqueued tasks join the request's collection, in order with add_task's."""
    first = jobs.add.enqueue(2, 3)
    views.tasks_of(request).add_task(write_notification, "between")
    return _ids(first, jobs.greet.enqueue("ada"), jobs.with_context.enqueue("ctx"))


def tasks_fail(request: HttpRequest) -> JsonResponse:
    return _ids(jobs.explode.enqueue("boom"), jobs.add.enqueue(1, 1))


def tasks_atomic(request: HttpRequest) -> JsonResponse:
    try:
        with transaction.atomic():
            rolled_back = jobs.add.enqueue(4, 4)
            raise ValueError("validation failed")
    except ValueError:
        pass
    return _ids(rolled_back, jobs.add.enqueue(5, 5))


def tasks_raise(request: HttpRequest) -> JsonResponse:
    jobs.add.enqueue(6, 6)
    raise ValueError("the view failed")


async def tasks_aenqueue(request: HttpRequest) -> JsonResponse:
    """An async view (run by Django through asgiref under WSGI) awaits aenqueue()."""
    return _ids(await jobs.greet.aenqueue("bob"), await jobs.add.aenqueue(20, 22))


def tasks_late(request: HttpRequest) -> JsonResponse:
    views.tasks_of(request).add_task(enqueue_later)
    return JsonResponse({"statuses": []})


def tasks_async_fail(request: HttpRequest) -> JsonResponse:
    return _ids(jobs.aexplode.enqueue("async boom"))


def tasks_not_json(request: HttpRequest) -> JsonResponse:
    return _ids(jobs.not_json.enqueue())
