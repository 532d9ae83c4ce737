"""``yourapp.tasks``: the README's task, recording each run as a JSON line.

The record is ``$YOURAPP_RECORD``, appended to (O_APPEND) so web processes and workers can
share it: the function, its argument, the pid, and the Flask app whose context it ran in.
"""

from __future__ import annotations

import json
import os


def send_welcome_email(email: str) -> None:
    """Record that the welcome email was sent."""
    try:
        import flask

        app = flask.current_app.name if flask.has_app_context() else None
    except ImportError:  # a Django or Falcon scratch project without Flask
        app = None
    line = {"task": "send_welcome_email", "email": email, "pid": os.getpid(), "app": app}
    with open(os.environ["YOURAPP_RECORD"], "a", encoding="utf-8") as record:
        record.write(json.dumps(line) + "\n")


def audit(event: str, email: str) -> None:
    """Record an event (the README's Django job records the sign-up with it)."""
    line = {"task": event, "email": email, "pid": os.getpid()}
    with open(os.environ["YOURAPP_RECORD"], "a", encoding="utf-8") as record:
        record.write(json.dumps(line) + "\n")
