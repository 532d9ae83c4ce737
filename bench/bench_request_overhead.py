"""Per-request overhead of the middleware when nothing is queued, in-process WSGI calls.

Each request is what a server does: a fresh environ, the call, the body iterated, then
``close()``. Contenders, interleaved round by round:

* bare: the app itself;
* pass-through: a middleware that only calls the app (the floor of any middleware);
* ClosingIterator: Werkzeug's ``ClosingIterator`` around the body, with no callbacks;
* bgtask: ``BackgroundTaskMiddleware`` (inline), nothing queued.

Target: bgtask no slower than ClosingIterator. Run with ``python -m bench.bench_request_overhead``
(``BGTASK_BENCH_QUICK=1`` for a quick run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import ClosingIterator

from bench._common import (
    header,
    interleave,
    median,
    paired_ratio,
    print_table,
    scaled,
    us,
    verdict,
)
from bench._wsgi import plain_app, streaming_app, timed_requests
from bgtask import BackgroundTaskMiddleware

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

#: Tolerance on "no slower": differences under 2 % are within this machine's noise.
NOISE = 1.02


def pass_through(app: WSGIApplication) -> WSGIApplication:
    def middleware(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
        return app(environ, start_response)

    return middleware


def closing_iterator(app: WSGIApplication) -> WSGIApplication:
    def middleware(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
        return ClosingIterator(app(environ, start_response))

    return middleware


def main() -> None:
    header("1. Per-request overhead, nothing queued (in-process WSGI: call, iterate, close)")
    rounds, ops = scaled(21, 7), scaled(20_000, 5_000)
    rows = []
    for body, app in (("list body", plain_app), ("generator body, 3 chunks", streaming_app)):
        contenders = {
            "bare": timed_requests(app),
            "pass-through": timed_requests(pass_through(app)),
            "ClosingIterator": timed_requests(closing_iterator(app)),
            "bgtask": timed_requests(BackgroundTaskMiddleware(app)),
        }
        times = interleave(contenders, ops=ops, rounds=rounds)
        bare = times["bare"]
        against_closing = paired_ratio(times["bgtask"], times["ClosingIterator"])
        for name, values in times.items():
            overhead = median([t - b for t, b in zip(values, bare, strict=True)])
            target = ""
            if name == "bgtask":
                passed = against_closing <= NOISE
                target = f"{against_closing:.2f}x ClosingIterator: {verdict(passed)}"
            rows.append(
                [
                    body,
                    name,
                    us(median(values)),
                    f"{paired_ratio(values, bare):.2f}",
                    us(overhead) if name != "bare" else "",
                    target,
                ]
            )
    print_table(
        ["body", "contender", "per request", "x bare", "overhead", "target: <= ClosingIterator"],
        rows,
    )
    print(f"\n{rounds} interleaved rounds of {ops} requests; medians.")


if __name__ == "__main__":
    main()
