"""BackgroundTask with sync callables: running, naming, argument checks and contextvars."""

from __future__ import annotations

import functools
import inspect
import itertools
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgtask import BackgroundTask

from .helpers.recording import request_id

if TYPE_CHECKING:
    from collections.abc import Callable

PRIVATE_EMAIL = "hunter2@example.com"
PRIVATE_KEY = "sk_live_0123456789abcdef"

calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def send_email(to: str, subject: str = "") -> None:
    """Record the call."""
    calls.append(("send_email", (to,), {"subject": subject}))


def send_with_token(token: str, /, *, to: str) -> None:
    """Record the call (positional-only and keyword-only parameters)."""
    calls.append(("send_with_token", (token,), {"to": to}))


def anything(*args: object, **kwargs: object) -> None:
    """Record whatever it is given."""
    calls.append(("anything", args, kwargs))


def fail(to: str) -> None:
    """Raise, naming no argument."""
    raise RuntimeError("smtp server refused the message")


class Mailer:
    """A class whose bound methods and instances are tasks."""

    def send(self, to: str, subject: str = "") -> None:
        """Record the call, with the instance."""
        calls.append(("Mailer.send", (self, to), {"subject": subject}))

    def __call__(self, to: str, *, subject: str = "") -> None:
        calls.append(("Mailer.__call__", (self, to), {"subject": subject}))

    @classmethod
    def send_from_class(cls, to: str) -> None:
        """Record the call, with the class."""
        calls.append(("Mailer.send_from_class", (cls, to), {}))


class Welcome:
    """A class used as a task: calling it runs ``__init__``."""

    def __init__(self, to: str, *, subject: str = "Welcome") -> None:
        calls.append(("Welcome", (to,), {"subject": subject}))


class StaticCall:
    """A callable object whose ``__call__`` is a staticmethod (no ``self``)."""

    @staticmethod
    def __call__(to: str) -> None:
        calls.append(("StaticCall", (to,), {}))


# --- what a task may be, and that calling runs it -------------------------------------


def test_plain_function_runs_with_its_arguments() -> None:
    """A plain function is called with the positional and keyword arguments given."""
    BackgroundTask(send_email, "a@example.com", subject="Hi")()
    assert calls == [("send_email", ("a@example.com",), {"subject": "Hi"})]


def test_calling_a_task_returns_none() -> None:
    """Calling a task returns None, whatever the function returned."""
    assert BackgroundTask(max, 1, 2)() is None


def test_partial_runs_with_its_own_and_the_given_arguments() -> None:
    """A partial's stored arguments come first, then the task's."""
    BackgroundTask(functools.partial(send_email, "a@example.com"), subject="Hi")()
    assert calls == [("send_email", ("a@example.com",), {"subject": "Hi"})]


def test_partial_keywords_can_be_overridden_by_the_task() -> None:
    """A keyword given to the task wins over the partial's keyword, as in a direct call."""
    BackgroundTask(functools.partial(send_email, subject="Old"), "a@example.com", subject="New")()
    assert calls == [("send_email", ("a@example.com",), {"subject": "New"})]


def test_bound_method_runs_on_its_instance() -> None:
    """A bound method is called on the instance it was taken from."""
    mailer = Mailer()
    BackgroundTask(mailer.send, "a@example.com")()
    assert calls == [("Mailer.send", (mailer, "a@example.com"), {"subject": ""})]


def test_classmethod_runs_on_its_class() -> None:
    """A classmethod taken from the class is called with the class."""
    BackgroundTask(Mailer.send_from_class, "a@example.com")()
    assert calls == [("Mailer.send_from_class", (Mailer, "a@example.com"), {})]


def test_callable_object_runs_its_call_method() -> None:
    """An object with a sync ``__call__`` is called."""
    mailer = Mailer()
    BackgroundTask(mailer, "a@example.com", subject="Hi")()
    assert calls == [("Mailer.__call__", (mailer, "a@example.com"), {"subject": "Hi"})]


def test_class_is_instantiated_with_the_arguments() -> None:
    """A class is a task: running it constructs an instance."""
    BackgroundTask(Welcome, "a@example.com", subject="Hello")()
    assert calls == [("Welcome", ("a@example.com",), {"subject": "Hello"})]


def test_builtin_bound_method_runs() -> None:
    """A builtin such as ``list.append`` of an instance is a task."""
    items: list[int] = []
    BackgroundTask(items.append, 1)()
    assert items == [1]


def test_lambda_runs() -> None:
    """A lambda is a plain function."""
    BackgroundTask(lambda to: send_email(to), "a@example.com")()
    assert calls == [("send_email", ("a@example.com",), {"subject": ""})]


@pytest.mark.parametrize(
    ("func", "args"),
    [
        pytest.param(send_email, ("a",), id="function"),
        pytest.param(lambda: None, (), id="lambda"),
        pytest.param(functools.partial(send_email, "a"), (), id="partial"),
        pytest.param(
            functools.partial(functools.partial(send_email), "a"), (), id="nested-partial"
        ),
        pytest.param(Mailer().send, ("a",), id="bound-method"),
        pytest.param(Mailer.send_from_class, ("a",), id="classmethod"),
        pytest.param(Mailer(), ("a",), id="callable-object"),
        pytest.param(Welcome, ("a",), id="class"),
        pytest.param(print, ("a",), id="builtin"),
        pytest.param([].append, ("a",), id="builtin-bound-method"),
    ],
)
def test_sync_callables_are_not_async(func: Callable[..., object], args: tuple[Any, ...]) -> None:
    """``is_async`` is False for every kind of sync callable."""
    assert BackgroundTask(func, *args).is_async is False


def test_is_async_is_decided_at_construction() -> None:
    """``is_async`` keeps the value it had when the task was built, even if ``func`` changes."""

    class Switch:
        def __call__(self) -> None:
            calls.append(("sync", (), {}))

    async def async_call(self: Switch) -> None:
        calls.append(("async", (), {}))

    task = BackgroundTask(Switch())
    setattr(Switch, "__call__", async_call)  # noqa: B010 (mypy refuses assigning a method)
    assert task.is_async is False
    assert BackgroundTask(Switch()).is_async is True
    task()  # the sync path still awaits the coroutine the object now returns
    assert calls == [("async", (), {})]


def test_exception_propagates_from_a_direct_call() -> None:
    """Calling a task directly raises what the function raised."""
    task = BackgroundTask(fail, "a@example.com")
    with pytest.raises(RuntimeError, match="smtp server refused"):
        task()


def test_base_exception_propagates_from_a_direct_call() -> None:
    """SystemExit from a sync task reaches the caller of a direct call."""

    def exit_now() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as excinfo:
        BackgroundTask(exit_now)()
    assert excinfo.value.code == 3


def test_task_can_run_more_than_once() -> None:
    """A task is not consumed by running it."""
    task = BackgroundTask(send_email, "a@example.com")
    task()
    task()
    assert len(calls) == 2


def test_task_keeps_func_and_arguments() -> None:
    """The function and arguments stay available as attributes (for testing helpers)."""
    task = BackgroundTask(send_email, "a@example.com", subject="Hi")
    assert task.func is send_email
    assert task.args == ("a@example.com",)
    assert task.kwargs == {"subject": "Hi"}


# --- repr and name: the function, never the arguments ---------------------------------


@pytest.mark.parametrize(
    ("build", "name"),
    [
        pytest.param(
            lambda: BackgroundTask(send_email, PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.send_email",
            id="function",
        ),
        pytest.param(
            lambda: BackgroundTask(
                functools.partial(send_email, PRIVATE_EMAIL), subject=PRIVATE_KEY
            ),
            f"functools.partial({__name__}.send_email)",
            id="partial-args",
        ),
        pytest.param(
            lambda: BackgroundTask(
                functools.partial(send_email, subject=PRIVATE_KEY), PRIVATE_EMAIL
            ),
            f"functools.partial({__name__}.send_email)",
            id="partial-keywords",
        ),
        pytest.param(
            lambda: BackgroundTask(Mailer().send, PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.Mailer.send",
            id="bound-method",
        ),
        pytest.param(
            lambda: BackgroundTask(Mailer(), PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.Mailer instance",
            id="callable-object",
        ),
        pytest.param(
            lambda: BackgroundTask(Welcome, PRIVATE_EMAIL, subject=PRIVATE_KEY),
            f"{__name__}.Welcome",
            id="class",
        ),
        pytest.param(
            lambda: BackgroundTask(print, PRIVATE_EMAIL, sep=PRIVATE_KEY),
            "builtins.print",
            id="builtin",
        ),
        pytest.param(
            lambda: BackgroundTask(anything, PRIVATE_EMAIL, token=PRIVATE_KEY),
            f"{__name__}.anything",
            id="var-keywords",
        ),
    ],
)
def test_repr_names_the_function_and_never_the_arguments(
    build: Callable[[], BackgroundTask], name: str
) -> None:
    """``repr`` and ``name`` show the callable's qualified name, never argument values."""
    task = build()
    assert task.name == name
    assert repr(task) == f"<BackgroundTask {name}>"
    assert PRIVATE_EMAIL not in repr(task)
    assert PRIVATE_KEY not in repr(task)


# --- TypeError at construction --------------------------------------------------------


@pytest.mark.parametrize("value", [PRIVATE_EMAIL, 42, None, [PRIVATE_EMAIL], {"to": PRIVATE_EMAIL}])
def test_non_callable_is_rejected_naming_only_its_type(value: object) -> None:
    """A non-callable raises TypeError naming its type, never its value."""
    with pytest.raises(
        TypeError, match=f"needs a callable, got an object of type {type(value).__name__}$"
    ) as excinfo:
        BackgroundTask(value)  # type: ignore[arg-type]
    assert PRIVATE_EMAIL not in str(excinfo.value)


BINDING_ERRORS = [
    pytest.param(send_email, (), {}, "missing a required argument: 'to'", id="missing-required"),
    pytest.param(
        send_email,
        (PRIVATE_EMAIL, PRIVATE_KEY, PRIVATE_EMAIL),
        {},
        "too many positional arguments",
        id="too-many-positional",
    ),
    pytest.param(
        send_email,
        (PRIVATE_EMAIL,),
        {"cc": PRIVATE_KEY},
        "got an unexpected keyword argument 'cc'",
        id="unexpected-keyword",
    ),
    pytest.param(
        send_email,
        (PRIVATE_EMAIL,),
        {"to": PRIVATE_KEY},
        "multiple values for argument 'to'",
        id="multiple-values",
    ),
    pytest.param(
        send_with_token,
        (),
        {"token": PRIVATE_EMAIL, "to": PRIVATE_KEY},
        # inspect's own wording, which Python 3.13 changed
        "got some positional-only arguments passed as keyword arguments: 'token'"
        if sys.version_info >= (3, 13)
        else "'token' parameter is positional only, but was passed as a keyword",
        id="positional-only-as-keyword",
    ),
    pytest.param(
        send_with_token,
        (PRIVATE_EMAIL,),
        {},
        # Python 3.12 started naming the kind of the missing parameter
        "missing a required keyword-only argument: 'to'"
        if sys.version_info >= (3, 12)
        else "missing a required argument: 'to'",
        id="missing-keyword-only",
    ),
]


@pytest.mark.parametrize(("func", "args", "kwargs", "problem"), BINDING_ERRORS)
def test_arguments_that_cannot_bind_are_rejected_at_construction(
    func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
) -> None:
    """A call that could not bind raises TypeError naming the function and the problem."""
    expected = f"cannot queue {__name__}.{func.__name__}: {problem}"
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$") as excinfo:
        BackgroundTask(func, *args, **kwargs)
    assert PRIVATE_EMAIL not in str(excinfo.value)
    assert PRIVATE_KEY not in str(excinfo.value)
    assert calls == []


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "name"),
    [
        pytest.param(Mailer().send, (), {}, "'to'", id="bound-method-missing"),
        pytest.param(
            Mailer().send,
            (PRIVATE_EMAIL, PRIVATE_EMAIL, PRIVATE_EMAIL),
            {},
            "positional",
            id="bound-method-too-many",
        ),
        pytest.param(
            Mailer().send,
            (PRIVATE_EMAIL,),
            {"self": PRIVATE_EMAIL},
            "'self'",
            id="bound-method-self-again",
        ),
        pytest.param(
            Mailer.send_from_class,
            (PRIVATE_EMAIL,),
            {"cls": PRIVATE_EMAIL},
            "'cls'",
            id="classmethod-cls-again",
        ),
        pytest.param(
            Mailer(), (), {"subject": PRIVATE_EMAIL}, "'to'", id="callable-object-missing"
        ),
        pytest.param(
            Mailer(),
            (PRIVATE_EMAIL, PRIVATE_EMAIL),
            {},
            "positional",
            id="callable-object-too-many",
        ),
        pytest.param(
            Mailer(),
            (PRIVATE_EMAIL,),
            {"cc": PRIVATE_EMAIL},
            "'cc'",
            id="callable-object-unexpected",
        ),
        pytest.param(Welcome, (), {}, "'to'", id="class-missing"),
        pytest.param(
            Welcome, (PRIVATE_EMAIL, PRIVATE_EMAIL), {}, "positional", id="class-too-many"
        ),
        pytest.param(
            Welcome, (PRIVATE_EMAIL,), {"to": PRIVATE_EMAIL}, "'to'", id="class-multiple-values"
        ),
        pytest.param(
            Welcome, (PRIVATE_EMAIL,), {"cc": PRIVATE_EMAIL}, "'cc'", id="class-unexpected"
        ),
        pytest.param(functools.partial(send_email), (), {}, "'to'", id="partial-missing"),
        pytest.param(
            functools.partial(send_email, PRIVATE_EMAIL),
            (PRIVATE_EMAIL,),
            {"subject": PRIVATE_EMAIL},
            "'subject'",
            id="partial-args-then-keyword",
        ),
        pytest.param(
            functools.partial(send_email, subject=PRIVATE_EMAIL),
            (),
            {},
            "'to'",
            id="partial-keywords-missing-required",
        ),
        pytest.param(
            functools.partial(send_email, to=PRIVATE_EMAIL),
            (PRIVATE_EMAIL,),
            {},
            "'to'",
            id="partial-keyword-then-positional",
        ),
        pytest.param(
            functools.partial(Mailer().send, PRIVATE_EMAIL),
            (PRIVATE_EMAIL, PRIVATE_EMAIL),
            {},
            "positional",
            id="partial-of-bound-method",
        ),
        pytest.param(
            functools.partial(send_with_token, PRIVATE_EMAIL),
            (),
            {},
            "'to'",
            id="partial-missing-keyword-only",
        ),
    ],
)
def test_arguments_that_cannot_bind_are_rejected_for_every_kind_of_callable(
    func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any], name: str
) -> None:
    """Bound methods, classes, partials and callable objects are checked like functions."""
    with pytest.raises(TypeError, match=r"^cannot queue .*" + re.escape(name)) as excinfo:
        BackgroundTask(func, *args, **kwargs)
    assert PRIVATE_EMAIL not in str(excinfo.value)
    with pytest.raises(TypeError):  # the check agrees with the real call
        func(*args, **kwargs)


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        pytest.param(anything, (), {}, id="var-args-nothing"),
        pytest.param(
            anything, (1, 2, 3, 4, 5), {"to": 1, "func": 2, "self": 3}, id="var-args-anything"
        ),
        pytest.param(
            functools.partial(anything, 1, to=2), (3,), {"to": 4}, id="partial-of-var-args"
        ),
        pytest.param(Mailer().send, ("a",), {"subject": "b"}, id="bound-method"),
        pytest.param(Mailer(), ("a",), {"subject": "b"}, id="callable-object"),
        pytest.param(Welcome, ("a",), {"subject": "b"}, id="class"),
        pytest.param(functools.partial(send_email, "a"), (), {"subject": "b"}, id="partial-args"),
        pytest.param(functools.partial(send_email, subject="b"), ("a",), {}, id="partial-keywords"),
        pytest.param(
            functools.partial(send_email, to="a"),
            (),
            {"subject": "b"},
            id="partial-required-as-keyword",
        ),
        pytest.param(
            functools.partial(send_with_token, to="a"), ("t",), {}, id="partial-keyword-only"
        ),
        pytest.param(send_with_token, ("t",), {"to": "a"}, id="positional-only-and-keyword-only"),
        pytest.param(send_email, (), {"to": "a", "subject": "b"}, id="all-by-keyword"),
    ],
)
def test_arguments_that_bind_are_accepted(
    func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Calls that bind build a task, and the task then runs."""
    BackgroundTask(func, *args, **kwargs)()


@pytest.mark.parametrize(
    ("func", "args"),
    [
        pytest.param(max, (1, 2), id="max"),
        pytest.param(getattr, (), id="getattr-without-arguments"),
        pytest.param(range, (PRIVATE_EMAIL,), id="range-type"),
    ],
)
def test_builtins_without_a_readable_signature_are_accepted(
    func: Callable[..., object], args: tuple[Any, ...]
) -> None:
    """A builtin whose signature cannot be read is accepted unchecked."""
    with pytest.raises(ValueError, match="signature"):
        inspect.signature(func)
    task = BackgroundTask(func, *args)
    assert task.func is func


def test_callable_object_with_static_call_method_is_accepted() -> None:
    """An object whose ``__call__`` is a staticmethod takes no ``self``."""
    StaticCall()("a@example.com")  # the call itself is fine
    calls.clear()
    BackgroundTask(StaticCall(), "a@example.com")()
    assert calls == [("StaticCall", ("a@example.com",), {})]


# --- the check at construction agrees with the call itself -----------------------------


def check_arguments(
    func: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
) -> str | None:
    """Why building a task of ``func(*args, **kwargs)`` fails, or None when it succeeds."""
    try:
        BackgroundTask(func, *args, **kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def no_parameters() -> None: ...
def one(a: object) -> None: ...
def with_default(a: object, b: object = 0) -> None: ...
def positional_only(a: object, b: object = 0, /) -> None: ...
def positional_only_then_normal(a: object, /, b: object, c: object = 0) -> None: ...
def keyword_only(*, a: object, b: object = 0) -> None: ...
def var_args(a: object, *args: object) -> None: ...
def var_keywords(a: object, **kwargs: object) -> None: ...
def positional_only_and_var_keywords(a: object, /, **kwargs: object) -> None: ...
def defaults_and_keyword_only(a: object, b: object = 0, *, c: object, d: object = 0) -> None: ...
def all_defaults(a: object = 0, /, b: object = 0, *, c: object = 0) -> None: ...
def var_args_and_keyword_only(*args: object, a: object) -> None: ...
def everything(
    a: object, /, b: object, *args: object, c: object, d: object = 0, **kwargs: object
) -> None: ...


SHAPES: list[Callable[..., None]] = [
    no_parameters,
    one,
    with_default,
    positional_only,
    positional_only_then_normal,
    keyword_only,
    var_args,
    var_keywords,
    positional_only_and_var_keywords,
    defaults_and_keyword_only,
    all_defaults,
    var_args_and_keyword_only,
    everything,
]

KEYWORD_POOL = ["a", "b", "c", "d", "e", "args", "kwargs", "self"]

CALL_SHAPES: list[tuple[int, tuple[str, ...]]] = [
    (0, ()),
    (1, ()),
    (2, ()),
    (3, ()),
    (5, ()),
    (0, ("a",)),
    (0, ("a", "b")),
    (0, ("a", "b", "c")),
    (0, ("c", "d")),
    (1, ("a",)),
    (1, ("b",)),
    (1, ("b", "c")),
    (2, ("c",)),
    (2, ("b", "c")),
    (0, ("e",)),
    (1, ("kwargs",)),
    (3, ("args", "c")),
]


@pytest.mark.parametrize(
    ("func", "positional", "keywords"),
    [
        pytest.param(
            func, positional, keywords, id=f"{func.__name__}-{positional}-{'-'.join(keywords)}"
        )
        for func, (positional, keywords) in itertools.product(SHAPES, CALL_SHAPES)
    ],
)
def test_check_arguments_agrees_with_the_call(
    func: Callable[..., None], positional: int, keywords: tuple[str, ...]
) -> None:
    """The fast check accepts exactly the calls the function itself accepts."""
    args = tuple(range(positional))
    kwargs: dict[str, object] = dict.fromkeys(keywords, 0)
    assert (check_arguments(func, args, kwargs) is None) == _really_calls(func, args, kwargs)


@given(
    func=st.sampled_from(SHAPES),
    positional=st.integers(min_value=0, max_value=6),
    keywords=st.sets(st.sampled_from(KEYWORD_POOL)),
)
def test_check_arguments_agrees_with_the_call_for_any_call(
    func: Callable[..., None], positional: int, keywords: set[str]
) -> None:
    """For generated calls, the fast check and the real call agree."""
    args = tuple(range(positional))
    kwargs: dict[str, object] = dict.fromkeys(keywords, 0)
    problem = check_arguments(func, args, dict(kwargs))
    assert (problem is None) == _really_calls(func, args, kwargs), problem


def _really_calls(
    func: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
) -> bool:
    # Calling is the ground truth (the shapes are no-ops). Signature.bind is not: Python
    # 3.13's accepts f(a=1) for f(a, /, **kwargs), which the call itself refuses.
    try:
        func(*args, **kwargs)
    except TypeError:
        return False
    return True


def _wrap(
    shape: Callable[..., None],
    how: str,
    pre_args: tuple[object, ...],
    pre_keywords: dict[str, object],
) -> Callable[..., object]:
    if how == "bound-method":
        return type("Owner", (), {"method": shape})().method  # type: ignore[no-any-return]
    if how == "callable-object":
        return type("Owner", (), {"__call__": shape})()  # type: ignore[no-any-return]
    return functools.partial(shape, *pre_args, **pre_keywords)


@given(
    shape=st.sampled_from(SHAPES),
    how=st.sampled_from(["bound-method", "callable-object", "partial"]),
    pre_positional=st.integers(min_value=0, max_value=2),
    pre_keywords=st.sets(st.sampled_from(KEYWORD_POOL), max_size=2),
    positional=st.integers(min_value=0, max_value=4),
    keywords=st.sets(st.sampled_from(KEYWORD_POOL)),
)
def test_check_arguments_agrees_with_a_real_call_for_wrapped_functions(
    shape: Callable[..., None],
    how: str,
    pre_positional: int,
    pre_keywords: set[str],
    positional: int,
    keywords: set[str],
) -> None:
    """Bound methods, callable objects and partials are accepted exactly when the call binds.

    The reference is the call itself: ``Signature.bind`` on a bound method lets a ``self=``
    keyword into ``**kwargs``, where the real call fails with "multiple values".
    """
    func = _wrap(shape, how, tuple(range(pre_positional)), dict.fromkeys(pre_keywords, 0))
    args = tuple(range(positional))
    kwargs: dict[str, object] = dict.fromkeys(keywords, 0)
    problem = check_arguments(func, args, dict(kwargs))
    assert (problem is None) == _really_calls(func, args, kwargs), problem


def test_check_arguments_does_not_change_the_given_keywords() -> None:
    """Checking a partial merges keywords into a new dict, leaving the caller's alone."""
    kwargs: dict[str, object] = {"subject": "b"}
    task = BackgroundTask(functools.partial(send_email, to="a"), **kwargs)
    assert kwargs == {"subject": "b"}
    assert task.kwargs == {"subject": "b"}


# --- contextvars ----------------------------------------------------------------------


def test_task_sees_the_context_captured_at_construction() -> None:
    """A contextvar changed after the task was built keeps its old value in the task."""
    seen: list[str] = []
    token = request_id.set("request-1")
    try:
        task = BackgroundTask(lambda: seen.append(request_id.get()))
        request_id.set("request-2")
        task()
    finally:
        request_id.reset(token)
    assert seen == ["request-1"]


def test_task_changes_to_contextvars_do_not_leak_to_the_caller() -> None:
    """A task that sets a contextvar leaves the caller's value alone."""
    token = request_id.set("caller")
    try:
        BackgroundTask(request_id.set, "task")()
        assert request_id.get() == "caller"
    finally:
        request_id.reset(token)


def test_each_run_starts_from_the_captured_context() -> None:
    """A change made by one run is not seen by the next run of the same task."""
    seen: list[str] = []

    def read_then_write() -> None:
        seen.append(request_id.get())
        request_id.set("changed by the task")

    task = BackgroundTask(read_then_write)
    task()
    task()
    assert seen == ["-", "-"]
