"""What add_task checks for RQ and Celery beyond the function: its arguments, by name.

A serializer's own error text can quote the value it choked on (an email, a token), so
messages name the argument (position or keyword) and its type only. With a pickle-based
serializer, classes and functions defined in ``__main__`` are refused: pickle stores them
by name and a worker, where ``__main__`` is another module, fails to load the job.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bgtask import BackgroundTask
from bgtask.celery import CeleryBackend
from bgtask.rq import RQBackend

from .apps.remote_tasks import DECLARED, decorated, record
from .helpers.deployments import unreachable_app, unreachable_queue
from .helpers.forking import run_python

SECRET = "token-5f1e-do-not-log"  # noqa: S105 (a value that must not leak)


class Secret:
    """A value whose pickling error quotes it, as some libraries' objects do."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        msg = f"cannot pickle Secret({self.value!r})"
        raise TypeError(msg)


def pickling_backends() -> list[RQBackend | CeleryBackend]:
    pickling = unreachable_app(task_serializer="pickle", accept_content=["pickle"])
    return [RQBackend(unreachable_queue()), CeleryBackend(pickling, tasks=DECLARED)]


@pytest.mark.parametrize("backend", pickling_backends(), ids=["rq", "celery-pickle"])
def test_the_error_names_the_argument_and_its_type_never_its_value(
    backend: RQBackend | CeleryBackend,
) -> None:
    """Position or keyword, and the type; not the serializer's message, which has the value."""
    with pytest.raises(TypeError) as positional:
        backend.check(BackgroundTask(record, "events", Secret(SECRET)))  # type: ignore[arg-type]
    assert "its positional argument 2 (of type Secret) cannot be serialized" in str(
        positional.value
    )
    assert SECRET not in str(positional.value)

    with pytest.raises(TypeError) as keyword:
        backend.check(BackgroundTask(record, "events", tag=Secret(SECRET)))  # type: ignore[arg-type]
    assert "its keyword argument 'tag' (of type Secret) cannot be serialized" in str(keyword.value)
    assert SECRET not in str(keyword.value)


def test_json_errors_name_the_argument_too() -> None:
    """Celery's default serializer: the same message shape."""
    backend = CeleryBackend(unreachable_app(), tasks=DECLARED)
    with pytest.raises(TypeError, match=r"keyword argument 'tag' \(of type set\) cannot be "):
        backend.check(BackgroundTask(record, "events", tag={"a@b.c"}))  # type: ignore[arg-type]


MAIN_SCRIPT = """
import json
from bgtask import BackgroundTask
from bgtask.celery import CeleryBackend
from bgtask.rq import RQBackend
from tests.helpers.deployments import unreachable_app, unreachable_queue
from tests.apps.remote_tasks import DECLARED, record

class Point:  # defined in __main__: a worker cannot import it
    def __init__(self, x):
        self.x = x

def helper():  # a function from __main__ inside an argument
    pass

pickling = unreachable_app(task_serializer="pickle", accept_content=["pickle"])
backends = {"rq": RQBackend(unreachable_queue()), "celery": CeleryBackend(pickling, tasks=DECLARED)}
report = {}
for name, backend in backends.items():
    cases = {"instance": ("events", Point(1)), "nested": ("events", [{"f": helper}])}
    for label, args in cases.items():
        try:
            backend.check(BackgroundTask(record, *args))
            report[f"{name}-{label}"] = "accepted"
        except TypeError as exc:
            report[f"{name}-{label}"] = str(exc)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_an_argument_of_a_class_defined_in_main_is_refused_for_pickle_serializers() -> None:
    """A script run as __main__: RQ's pickle and Celery's pickle refuse it in the request."""
    result = run_python(MAIN_SCRIPT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for engine in ("rq", "celery"):
        assert (
            "its positional argument 2 (of type Point) refers to __main__.Point, defined in "
            "__main__ (the script being run)" in report[f"{engine}-instance"]
        )
        assert (
            "its positional argument 2 (of type list) refers to __main__.helper"
            in report[f"{engine}-nested"]
        )


@pytest.mark.parametrize(
    "backend",
    [RQBackend(unreachable_queue()), CeleryBackend(unreachable_app(), tasks=DECLARED)],
    ids=["rq", "celery"],
)
def test_a_decorator_without_functools_wraps_is_named_and_the_fix_given(
    backend: RQBackend | CeleryBackend,
) -> None:
    """The wrapper's qualname shows <locals>: say so, and suggest functools.wraps."""
    with pytest.raises(TypeError) as error:
        backend.check(BackgroundTask(decorated, "events", "tag"))
    message = str(error.value)
    assert "it is defined inside a function (without_wraps.<locals>.wrapper)" in message
    assert "If it is a decorator's wrapper (it wraps decorated), the decorator hides" in message
    assert "decorate the wrapper with @functools.wraps(func)" in message
