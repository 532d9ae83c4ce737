"""Drives the project with ``django.test.Client`` in a process of its own (Django's settings
are global): ``python -m tests.apps.djangoproject.drive METHOD PATH [FIELD=VALUE ...]...``.

Each request is ``METHOD PATH`` followed by its form fields; prints one JSON line per
request (status, body), then ``done`` and this thread's id. ``DJANGO_WSGI_RECIPE=1`` sends
them through the wsgi.py application with Werkzeug's closing client instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djangoproject.settings")


def _answer(client: Any, outer: bool, method: str, path: str, data: dict[str, str]) -> Any:
    from django.db import transaction

    # outer: inside a transaction of the caller's, as django.test.TestCase runs requests.
    with transaction.atomic() if outer else contextlib.nullcontext():
        try:
            response = client.get(path, data) if method == "GET" else client.post(path, data)
        except ValueError as error:  # DEBUG_PROPAGATE_EXCEPTIONS: out of Django's handler
            return {"status": 0, "body": f"raised {error}"}
        try:
            streamed = response.streaming
            body = b"".join(response.streaming_content) if streamed else response.content
        except RuntimeError as error:  # a body that raised while it was read
            body = f"body raised {error}".encode()
    return {"status": response.status_code, "body": body.decode()[:40]}


def main(argv: list[str]) -> None:
    import django

    django.setup()
    from django.test import Client

    from .views import create_table

    create_table()
    requests: list[tuple[str, str, dict[str, str]]] = []
    for word in argv:
        if word.isupper():
            requests.append((word, "", {}))
        elif not requests[-1][1]:
            requests[-1] = (requests[-1][0], word, {})
        else:
            name, _, value = word.partition("=")
            requests[-1][2][name] = value
    if os.environ.get("DJANGO_WSGI_RECIPE") == "1":
        from werkzeug.test import Client as WerkzeugClient

        from bgtask.testing import closing_client

        from .wsgi import application

        werkzeug = closing_client(WerkzeugClient(application))
        for method, path, data in requests:
            answer = werkzeug.open(path, method=method, data=data)
            print(json.dumps({"status": answer.status_code, "body": answer.get_data(True)}))
    else:
        from bgtask.testing import capture_tasks

        # DJANGO_OUTER_ATOMIC=1: each request inside a transaction of the caller's.
        outer = os.environ.get("DJANGO_OUTER_ATOMIC") == "1"
        client = Client(raise_request_exception=False)
        # DJANGO_CAPTURE=run|record: the requests inside bgtask.testing.capture_tasks().
        capture = os.environ.get("DJANGO_CAPTURE")
        capturing = capture_tasks(run=capture == "run") if capture else contextlib.nullcontext()
        with capturing as captured:
            answers = [
                _answer(client, outer, method, path, data) for method, path, data in requests
            ]
        if captured is not None:
            names = [f"{f.__name__}{list(args)}" for f, args, _ in captured]
            print("captured", *names, file=sys.stderr)
        for answer in answers:
            print(json.dumps(answer))
    from bgtask import _exit, drain

    print("exit timeout", _exit._exit_timeout, file=sys.stderr)  # what EXIT_TIMEOUT set

    assert drain(10), "the offloaded tasks did not finish"
    print("done", threading.get_ident())  # the thread the requests ran in


if __name__ == "__main__":
    main(sys.argv[1:])
