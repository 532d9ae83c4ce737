"""The project's wsgi.py, as ``startproject`` writes it (gunicorn serves ``application``);
``DJANGO_WSGI_RECIPE=1`` wraps it in bgtask's WSGI middleware too (the README's older
recipe), which must not make any task run twice."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djangoproject.settings")

from django.core.wsgi import get_wsgi_application

from bgtask import BackgroundTaskMiddleware

from .views import create_table

django_application = get_wsgi_application()
create_table()
application = (
    BackgroundTaskMiddleware(django_application)
    if os.environ.get("DJANGO_WSGI_RECIPE") == "1"
    else django_application
)
