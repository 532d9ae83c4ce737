"""``settings.BGTASK``: read once, validated, with an ``ImproperlyConfigured`` naming the key.

====================  ===========================================================  =========
key                   what it sets                                                 default
====================  ===========================================================  =========
``MODE``              ``"inline"`` (in ``close()``), ``"offload"`` (a pool), or    ``inline``
                      ``"backend"`` (``BACKEND`` below)
``OFFLOAD_THREADS``   offload mode: a pool of its own with this many threads       (default
                                                                                   pool)
``OFFLOAD_MAX_PENDING`` that pool's ``max_pending``                                ``1000``
``BACKEND``           a backend object, or the dotted path of one                  (none)
                      (``"yourapp.bgtask_rq.backend"``: an ``RQBackend``)
``EXIT_TIMEOUT``      seconds the exit drain waits (for the whole process)         ``10``
``DISCARD_ON_ERROR``  a view that raised: discard its tasks                        ``True``
``DISCARD_ON_5XX``    a response with a 5xx status: discard its tasks              ``False``
``TRANSACTIONS``      a task queued in ``atomic()`` waits for its commit           ``True``
``TASK_TIMEOUT``      the deadline of tasks without one of their own (seconds)     (none)
====================  ===========================================================  =========
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn

import django.conf
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ._backend import Backend
from ._exit import set_exit_timeout
from ._offload import OffloadPool, default_pool
from ._options import TaskOptions

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["KEYS", "Options", "options"]

#: Every key settings.BGTASK may hold (a typo is an error, not a silent default).
KEYS: Final = frozenset({
    "MODE", "OFFLOAD_THREADS", "OFFLOAD_MAX_PENDING", "BACKEND", "EXIT_TIMEOUT",
    "DISCARD_ON_ERROR", "DISCARD_ON_5XX", "TRANSACTIONS", "TASK_TIMEOUT",
})  # fmt: skip
MODES: Final = ("inline", "offload", "backend")


@dataclass(frozen=True)
class Options:
    """What ``settings.BGTASK`` asks for, validated."""

    #: Where a request's tasks go at close(); None: inline.
    backend: Backend | None = None
    discard_on_error: bool = True
    discard_on_5xx: bool = False
    transactions: bool = True
    #: The deadline of a request's tasks that have none of their own (``@bgtask.task``).
    task_timeout: float | None = None


_cached: Options | None = None


def options() -> Options:
    """The project's options, built on first use (the pool too) and kept; ``override_settings``
    of ``BGTASK`` builds them again. ``ImproperlyConfigured`` says what is wrong."""
    global _cached
    if _cached is None:
        # django.conf.settings, not imported by name: --doctest-modules (ours, a project's)
        # would probe the lazy object for __wrapped__, which raises before it is configured.
        _cached = _build(getattr(django.conf.settings, "BGTASK", {}))
    return _cached


def _build(config: Mapping[str, Any]) -> Options:
    if not isinstance(config, dict):
        _wrong(f"must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - KEYS)
    if unknown:
        _wrong(f"has unknown keys {unknown}; the keys are {sorted(KEYS)}")
    mode = config.get("MODE", "backend" if "BACKEND" in config else "inline")
    if mode not in MODES:
        _wrong(f"['MODE'] must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if "EXIT_TIMEOUT" in config:
        timeout = config["EXIT_TIMEOUT"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            _wrong(f"['EXIT_TIMEOUT'] must be a number of seconds >= 0, got {timeout!r}")
        set_exit_timeout(float(timeout))
    if mode != "offload" and {"OFFLOAD_THREADS", "OFFLOAD_MAX_PENDING"} & set(config):
        _wrong("['OFFLOAD_THREADS'] and ['OFFLOAD_MAX_PENDING'] need 'MODE': 'offload'")
    if mode != "backend" and "BACKEND" in config:
        _wrong(f"['BACKEND'] needs 'MODE': 'backend' (it is {mode!r})")
    return Options(
        backend=_backend(mode, config),
        discard_on_error=_flag(config, "DISCARD_ON_ERROR", default=True),
        discard_on_5xx=_flag(config, "DISCARD_ON_5XX", default=False),
        transactions=_flag(config, "TRANSACTIONS", default=True),
        task_timeout=_timeout(config),
    )


def _timeout(config: Mapping[str, Any]) -> float | None:
    try:
        return TaskOptions(timeout=config.get("TASK_TIMEOUT")).timeout
    except (TypeError, ValueError) as error:
        _wrong(f"['TASK_TIMEOUT'] {error}")


def _backend(mode: str, config: Mapping[str, Any]) -> Backend | None:
    if mode == "inline":
        return None
    if mode == "offload":
        if "OFFLOAD_THREADS" not in config:
            return default_pool()
        return OffloadPool(
            threads=_whole(config, "OFFLOAD_THREADS", None),
            max_pending=_whole(config, "OFFLOAD_MAX_PENDING", 1000),
        )
    backend = config.get("BACKEND")
    if backend is None:
        _wrong("['MODE'] is 'backend' but ['BACKEND'] is not set")
    if isinstance(backend, str):
        try:
            backend = import_string(backend)
        except ImportError as error:
            _wrong(f"['BACKEND'] names {backend!r}, which cannot be imported: {error}")
    if not isinstance(backend, Backend):
        _wrong(f"['BACKEND'] needs a submit(tasks) method, got {type(backend).__name__}")
    return backend


def _flag(config: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        _wrong(f"[{key!r}] must be True or False, got {value!r}")
    return value


def _whole(config: Mapping[str, Any], key: str, default: int | None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _wrong(f"[{key!r}] must be a whole number >= 1, got {value!r}")
    return value


def _wrong(problem: str) -> NoReturn:
    msg = f"settings.BGTASK{'' if problem.startswith('[') else ' '}{problem}"
    raise ImproperlyConfigured(msg)


def _forget(*, setting: str, **extra: Any) -> None:
    global _cached
    if setting == "BGTASK":
        _cached = None


setting_changed.connect(_forget, weak=False)
