"""Flask's conventions for bgtask: the ``BGTASK_*`` keys of ``app.config``, and a test client
that closes its responses.

=============================  ==========================================  =========
key                            what it sets                                default
=============================  ==========================================  =========
``BGTASK_OFFLOAD``             ``True``: tasks run on the default pool     ``False``
``BGTASK_OFFLOAD_THREADS``     a pool of its own, with this many threads   (none)
``BGTASK_OFFLOAD_MAX_PENDING`` that pool's ``max_pending``                 ``1000``
``BGTASK_BACKEND``             a backend object (``RQBackend(...)``)       (none)
``BGTASK_EXIT_TIMEOUT``        seconds the exit drain waits (the process)  ``10``
``BGTASK_TASK_TIMEOUT``        a task's deadline, unless it has its own    (none)
``BGTASK_LISTENERS``           listeners of the app's task events          ``()``
``BGTASK_REQUEST_ID_HEADER``   the header of the events' ``request_id``    ``X-Request-ID``
=============================  ==========================================  =========

Keyword arguments of ``BgTask(app, ...)`` win over the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from flask.testing import FlaskClient

from ._exit import set_exit_timeout
from ._offload import OffloadPool

if TYPE_CHECKING:
    import flask
    from werkzeug.test import TestResponse

    from ._backend import Backend

__all__ = ["UNSET", "ClosingFlaskClient", "options_from_config"]

#: A keyword argument the caller did not pass: the config decides.
UNSET: Final[Any] = object()


def options_from_config(
    app: flask.Flask, offload: bool | OffloadPool, backend: Backend | None
) -> tuple[bool | OffloadPool, Backend | None]:
    """``offload`` and ``backend`` as given, or as ``app.config`` says where not given."""
    config = app.config
    if "BGTASK_EXIT_TIMEOUT" in config:
        set_exit_timeout(float(config["BGTASK_EXIT_TIMEOUT"]))
    if offload is UNSET:
        threads = config.get("BGTASK_OFFLOAD_THREADS")
        if threads is not None:
            offload = OffloadPool(
                threads=_whole(config, "BGTASK_OFFLOAD_THREADS"),
                max_pending=_whole(config, "BGTASK_OFFLOAD_MAX_PENDING", 1000),
            )
        else:
            offload = config.get("BGTASK_OFFLOAD", False)
            if not isinstance(offload, bool | OffloadPool):
                msg = f"app.config['BGTASK_OFFLOAD'] must be True or False, got {offload!r}"
                raise TypeError(msg)
    if backend is None:
        backend = config.get("BGTASK_BACKEND")
    return offload, backend


def _whole(config: flask.Config, key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"app.config[{key!r}] must be a whole number, got {value!r}"
        raise TypeError(msg)
    return value


class ClosingFlaskClient(FlaskClient):
    """Flask's test client, closing every response it returns: a request's tasks have run
    when ``client.get(...)`` returns, as under a real server. ``BgTask(app)`` makes it the
    app's ``test_client_class`` unless the app has one; ``buffered=False`` in a call still
    asks for a streaming response.

    >>> import flask
    >>> app = flask.Flask("example")
    >>> app.test_client_class = ClosingFlaskClient
    >>> app.test_client().get("/").status_code
    404
    """

    def open(self, *args: Any, buffered: bool = True, **kwargs: Any) -> TestResponse:
        return super().open(*args, buffered=buffered, **kwargs)
