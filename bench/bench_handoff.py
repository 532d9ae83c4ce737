"""The cost of bgtask's hand-off deadline: a request's close() with and without it.

Each request queues one task and is handed to RQ (local Redis) or Celery (local RabbitMQ).
*with the deadline* is the backend as shipped: the connect and send phases run on a native
helper thread while close() waits on a native lock with ``handoff_timeout``. *without* runs
the very same phases inline in close(), as a plain client call would, with no bound. The
difference is what the deadline costs a request (a thread start, two lock hand-offs).

Needs Redis at 127.0.0.1:6379 and RabbitMQ at 127.0.0.1:5672; a missing one is skipped.
Run with ``python -m bench.bench_handoff``.
"""

from __future__ import annotations

import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from bench._common import header, interleave, median, paired_ratio, print_table, scaled, us
from bench._wsgi import environ_template, send_welcome_email, start_response
from bgtask import BackgroundTaskMiddleware, get_background_tasks
from bgtask._handoff import Handoff, _run_phases

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import WSGIEnvironment

    from bgtask._remote import RemoteBackend


class Unbounded(Handoff):
    """The same phases, run inline in close(): no helper thread, no deadline."""

    def run(self, phases: Any, *, timeout: float | None = None, **options: Any) -> Any:
        return _run_phases(phases, None)


def view(environ: WSGIEnvironment, start: Any) -> Iterable[bytes]:
    get_background_tasks().add_task(send_welcome_email, "user@example.com")
    start("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def closing(backend: RemoteBackend) -> Callable[[int], float]:
    """Seconds spent in close() over ``n`` requests (the view and the body excluded)."""
    app = BackgroundTaskMiddleware(view, backend=backend)
    template = environ_template()

    def run(n: int) -> float:
        spent = 0.0
        for _ in range(n):
            result: Any = app(template.copy(), start_response)
            for _chunk in result:
                pass
            started = time.perf_counter()
            result.close()
            spent += time.perf_counter() - started
        return spent

    return run


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def rq_pair(queue: str) -> tuple[RemoteBackend, RemoteBackend, Callable[[], None]]:
    from redis import Redis
    from rq import Queue

    from bgtask.rq import RQBackend

    connection = Redis.from_url("redis://127.0.0.1:6379/9")
    bounded = RQBackend(Queue(queue, connection=connection), tasks=[send_welcome_email])
    unbounded = RQBackend(Queue(queue, connection=connection))
    unbounded._handoff = Unbounded(0.5)

    def clean() -> None:
        Queue(queue, connection=connection).delete(delete_jobs=True)

    return bounded, unbounded, clean


def celery_pair(queue: str) -> tuple[RemoteBackend, RemoteBackend, Callable[[], None]]:
    from celery import Celery

    from bgtask.celery import CeleryBackend

    app = Celery("bench_handoff", broker="amqp://guest:guest@127.0.0.1:5672//")
    bounded = CeleryBackend(app, queue=queue, tasks=[send_welcome_email])
    unbounded = CeleryBackend(app, queue=queue)
    unbounded._handoff = Unbounded(0.5)

    def clean() -> None:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)
            connection.default_channel.exchange_delete(queue)
        app.close()

    return bounded, unbounded, clean


def main() -> None:
    header("7. The hand-off deadline: close() to a local broker, with and without it")
    rounds, ops = scaled(15, 5), scaled(400, 100)
    rows = []
    engines = {"RQ, local Redis": (6379, rq_pair), "Celery, local RabbitMQ": (5672, celery_pair)}
    for engine, (port, pair) in engines.items():
        if not listening(port):
            rows.append([engine, "skipped: nothing listens on port", str(port), "", ""])
            continue
        bounded, unbounded, clean = pair(f"bench-handoff-{uuid.uuid4().hex[:8]}")
        try:
            times = interleave(
                {"without": closing(unbounded), "with": closing(bounded)},
                ops=ops,
                rounds=rounds,
            )
        finally:
            clean()
        cost = median([w - o for w, o in zip(times["with"], times["without"], strict=True)])
        ratio = paired_ratio(times["with"], times["without"])
        rows.append(
            [
                engine,
                us(median(times["without"])),
                us(median(times["with"])),
                us(cost),
                f"{ratio:.2f}",
            ]
        )
    print_table(["engine", "close(), no deadline", "close(), deadline", "cost", "ratio"], rows)
    print(f"\n{rounds} interleaved rounds of {ops} requests; medians per request.")


if __name__ == "__main__":
    main()
