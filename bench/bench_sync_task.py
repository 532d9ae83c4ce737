"""One sync no-op task per request: bgtask against Flask's ``response.call_on_close``.

In-process WSGI calls (call, iterate, close), contenders interleaved round by round.

* Flask: the same view returning ``make_response("ok")``; it queues its task with
  ``get_background_tasks().add_task(noop)`` (app wrapped by ``BgTask``), or registers it
  with ``response.call_on_close(noop)`` (plain Flask). A bare Flask app without a task,
  and the ``BgTask`` app queuing nothing, are the references.
* Plain WSGI: ``BackgroundTaskMiddleware`` with ``add_task(noop)``, against what
  ``call_on_close`` amounts to without Flask: ``ClosingIterator(body, noop)``.

Target: bgtask no slower. Run with ``python -m bench.bench_sync_task``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask
from werkzeug.wsgi import ClosingIterator

from bench._common import header, interleave, median, paired_ratio, print_table, scaled, us
from bench._common import verdict as _verdict
from bench._wsgi import HEADERS, timed_requests
from bgtask import BackgroundTaskMiddleware, get_background_tasks
from bgtask.flask import BgTask

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIEnvironment

NOISE = 1.02
RUNS = [0]


def noop() -> None:
    RUNS[0] += 1


def flask_apps() -> dict[str, flask.Flask]:
    bare = flask.Flask("bare")
    bare.add_url_rule("/", view_func=lambda: flask.make_response("ok"))

    def on_close() -> flask.Response:
        response = flask.make_response("ok")
        response.call_on_close(noop)
        return response

    closing = flask.Flask("call_on_close")
    closing.add_url_rule("/", view_func=on_close)

    def queue() -> flask.Response:
        get_background_tasks().add_task(noop)
        return flask.make_response("ok")

    bgtask = flask.Flask("bgtask")
    BgTask(bgtask)
    bgtask.add_url_rule("/", view_func=queue)

    empty = flask.Flask("bgtask_empty")
    BgTask(empty)
    empty.add_url_rule("/", view_func=lambda: flask.make_response("ok"))
    return {
        "Flask, no task": bare,
        "Flask, BgTask, nothing queued": empty,
        "Flask call_on_close(noop)": closing,
        "Flask, BgTask add_task(noop)": bgtask,
    }


def bare_wsgi(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [b"ok"]


def closing_wsgi(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return ClosingIterator([b"ok"], noop)


def queuing_wsgi(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
    get_background_tasks().add_task(noop)
    start_response("200 OK", HEADERS)
    return [b"ok"]


def main() -> None:
    header("2. One sync no-op task per request: bgtask vs call_on_close (in-process WSGI)")
    rounds = scaled(15, 5)
    rows = []
    cases = [
        (
            "Flask",
            {name: timed_requests(app) for name, app in flask_apps().items()},
            "Flask, no task",
            "Flask call_on_close(noop)",
            "Flask, BgTask add_task(noop)",
            scaled(3_000, 1_000),
        ),
        (
            "plain WSGI",
            {
                "WSGI, no task": timed_requests(bare_wsgi),
                "ClosingIterator(body, noop)": timed_requests(closing_wsgi),
                "bgtask add_task(noop)": timed_requests(BackgroundTaskMiddleware(queuing_wsgi)),
            },
            "WSGI, no task",
            "ClosingIterator(body, noop)",
            "bgtask add_task(noop)",
            scaled(20_000, 5_000),
        ),
    ]
    for stack, contenders, bare, rival, ours, ops in cases:
        before = RUNS[0]
        times = interleave(contenders, ops=ops, rounds=rounds)
        expected = ops * (rounds + 1) * 2  # two contenders run the task, warm-up included
        assert RUNS[0] - before == expected, (RUNS[0] - before, expected)
        ratio = paired_ratio(times[ours], times[rival])
        for name, values in times.items():
            target = ""
            if name == ours:
                target = f"{ratio:.2f}x {rival}: {_verdict(ratio <= NOISE)}"
            overhead = median([t - b for t, b in zip(values, times[bare], strict=True)])
            rows.append(
                [
                    stack,
                    name,
                    us(median(values)),
                    f"{paired_ratio(values, times[bare]):.2f}",
                    us(overhead) if name != bare else "",
                    target,
                ]
            )
    print_table(
        ["stack", "contender", "per request", "x no task", "added", "target: no slower"], rows
    )
    print(f"\n{rounds} interleaved rounds; medians. Every task ran (counted).")


if __name__ == "__main__":
    main()
