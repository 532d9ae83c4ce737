"""Django integration: a middleware, settings, transactions, and a ``django.tasks`` backend.

Install with ``pip install 'wsgi-bgtask[django]'``; in ``settings.py``::

    INSTALLED_APPS = [..., "bgtask.django.BgTaskConfig"]   # validates BGTASK at startup
    MIDDLEWARE = ["bgtask.django.BgTaskMiddleware", ...]    # first
    BGTASK = {"MODE": "inline"}                              # optional, see the README

and in a view::

    def signup(request):
        request.background_tasks.add_task(send_welcome_email, request.POST["email"])
        return JsonResponse({"status": "Signup successful"})

The tasks run after the response was sent (in its ``close()``, which every WSGI server and
``django.test.Client`` call), in order, under bgtask's error policy. A view that raised has
its tasks discarded with a WARNING; a task queued inside ``transaction.atomic()`` runs only
if that transaction committed. ``TASKS = {"default": {"BACKEND":
"bgtask.django.AfterResponseBackend"}}`` makes ``django.tasks`` enqueue into the same place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._extras import missing

try:
    from django.apps import AppConfig
except ImportError as error:  # a clear message naming the extra
    raise missing("bgtask.django", "django", "django") from error

from ._current import get_background_tasks
from ._django_middleware import BgTaskMiddleware
from ._django_settings import options

if TYPE_CHECKING:
    from ._django_tasks import AfterResponseBackend, TaskNotRun

__all__ = [
    "AfterResponseBackend",
    "BgTaskConfig",
    "BgTaskMiddleware",
    "TaskNotRun",
    "get_background_tasks",
]


class BgTaskConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    """bgtask's app config: ``settings.BGTASK`` is validated in ``ready()``, so a mistake
    stops ``runserver``, ``migrate`` and the workers at startup with ``ImproperlyConfigured``.
    """

    name = "bgtask.django"
    label = "bgtask"
    verbose_name = "bgtask"

    def ready(self) -> None:
        options()


def __getattr__(name: str) -> Any:
    # The backend needs django.tasks (Django 6) or the django-tasks backport: imported only
    # by a project that names it in TASKS.
    if name in ("AfterResponseBackend", "TaskNotRun"):
        from . import _django_tasks

        return getattr(_django_tasks, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
