"""Django's Tasks framework, from Django 6's ``django.tasks`` or the ``django-tasks`` backport.

The two have the same API (the backport is where ``django.tasks`` was developed); only the
module differs. Importing this without either raises an ``ImportError`` naming the extra.
"""

from __future__ import annotations

try:  # Django 6
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 4.2 to 5.2, with the backport
    try:
        from django_tasks import TaskContext, TaskResult, TaskResultStatus
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import TaskError
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as error:
        msg = (
            "bgtask.django.AfterResponseBackend needs django.tasks (Django 6) or, on Django "
            "4.2 to 5.2, the django-tasks backport: pip install 'wsgi-bgtask[django-tasks]'"
        )
        raise ImportError(msg, name="django_tasks") from error

__all__ = [
    "BaseTaskBackend",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "task_enqueued",
    "task_finished",
    "task_started",
]
