"""The project's URLs (ROOT_URLCONF); the POST views are API endpoints, without CSRF."""

from __future__ import annotations

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from . import task_views, views

urlpatterns = [
    path("signup", csrf_exempt(views.signup)),
    path("items", views.items),
    path("slow", views.slow),
    path("fail", views.failing),
    path("boom", views.boom),
    path("unavailable", views.unavailable),
    path("download", views.download),
    path("committed", csrf_exempt(views.committed)),
    path("rolled-back", csrf_exempt(views.rolled_back)),
    path("savepoint", csrf_exempt(views.savepoint)),
    path("set-rollback", csrf_exempt(views.set_rollback)),
    path("atomic-boom", csrf_exempt(views.atomic_boom)),
    path("tasks/enqueue", task_views.tasks_enqueue),
    path("tasks/fail", task_views.tasks_fail),
    path("tasks/atomic", task_views.tasks_atomic),
    path("tasks/raise", task_views.tasks_raise),
    path("tasks/aenqueue", task_views.tasks_aenqueue),
    path("tasks/late", task_views.tasks_late),
    path("tasks/async-fail", task_views.tasks_async_fail),
    path("tasks/not-json", task_views.tasks_not_json),
    path("missing", views.missing),
    path("connections", views.connections_view),
    path("stream", views.stream),
    path("async-signup", views.async_signup),
]
handler500 = "tests.apps.djangoproject.views.server_error"
