"""Optional integrations: a clear ImportError naming the extra to install when one is missing."""

from __future__ import annotations

import importlib.util

__all__ = ["missing", "require"]


def require(module: str, library: str, extra: str) -> None:
    """Raise ``ImportError`` unless ``library`` can be imported (checked without importing
    it): ``module`` needs it, and ``pip install 'wsgi-bgtask[extra]'`` brings it.

    >>> require("bgtask", "json", "none")
    >>> require("bgtask.example", "no_such_library", "example")
    Traceback (most recent call last):
    ...
    ImportError: bgtask.example needs no_such_library, which is not installed: pip install ...
    """
    try:
        found = importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        found = False
    if not found:
        raise missing(module, library, extra)


def missing(module: str, library: str, extra: str) -> ImportError:
    """The ImportError of ``module`` when ``library`` (from the ``extra``) is not installed."""
    msg = f"{module} needs {library}, which is not installed: pip install 'wsgi-bgtask[{extra}]'"
    return ImportError(msg, name=library)
