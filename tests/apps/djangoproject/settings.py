"""The settings of the Django project the tests serve; what varies comes from the environment.

``DJANGO_DB``: ``sqlite`` (the file ``DJANGO_SQLITE``) or ``postgres`` (127.0.0.1:5432);
``DJANGO_ATOMIC_REQUESTS=1``; ``BGTASK_SETTINGS``: ``settings.BGTASK`` as JSON;
``BGTASK_TASKS_OPTIONS``: the ``OPTIONS`` of the ``django.tasks`` backend, as JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any

SECRET_KEY = "bgtask-tests"  # noqa: S105 (a test project)
DEBUG = False
DEBUG_PROPAGATE_EXCEPTIONS = os.environ.get("DJANGO_PROPAGATE") == "1"
USE_TZ = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "tests.apps.djangoproject.urls"
INSTALLED_APPS = ["bgtask.django.BgTaskConfig"]
MIDDLEWARE = [
    "bgtask.django.BgTaskMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "tests.apps.djangoproject.views.exploding_middleware",
]
if os.environ.get("DJANGO_NO_MIDDLEWARE") == "1":
    MIDDLEWARE = MIDDLEWARE[1:]

DATABASE: dict[str, Any]
if os.environ.get("DJANGO_DB") == "postgres":
    DATABASE = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }
else:
    DATABASE = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SQLITE", ":memory:"),
    }
DATABASE["ATOMIC_REQUESTS"] = os.environ.get("DJANGO_ATOMIC_REQUESTS") == "1"
DATABASES = {"default": DATABASE}

BGTASK = json.loads(os.environ.get("BGTASK_SETTINGS", "{}"))
TASKS = {
    "default": {
        "BACKEND": "bgtask.django.AfterResponseBackend",
        **json.loads(os.environ.get("BGTASK_TASKS_PARAMS", "{}")),
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"bgtask": {"handlers": ["err"], "level": "WARNING", "propagate": False}},
}
