"""End to end, nothing queued: what the middleware costs a real server's throughput.

gunicorn, gthread, 2 workers x 8 threads, on 127.0.0.1, wrk with 16 connections, keep-alive
and a new connection per request, 1-second runs, the contenders interleaved round by round
on the same server (``bench/_server_app.py``):

* Flask: the bare app, and the same app with ``BgTask`` (inline), queuing nothing;
* plain WSGI: the bare app, and under ``BackgroundTaskMiddleware``;
* an A/A control: a second bare Flask app, identical to the first. How far its ratios land
  from 1.00 is the noise of this machine at that moment.

Two figures per contender, each divided by its own stack's bare app in the same round
(median over rounds): throughput (requests per second, what the target is about), and
worker CPU per request (user + system time of the worker processes, from /proc, divided
by the requests served). Time spent queueing or idle is not CPU time, so the second is far
less sensitive to other load on the machine; at saturation throughput goes as its inverse.

Target: >= 0.97 of bare throughput. Run with ``python -m bench.bench_server_idle``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from bench import _server
from bench._common import header, print_table, scaled
from bench._common import verdict as _verdict
from bench._server import Contender, busiest_share, interleaved_loads, paired

TARGET = 0.97
CONNECTIONS = 16


def main() -> None:
    header("5a. End to end, nothing queued: gunicorn gthread 2x8, throughput vs bare")
    print(f"load: {_server.load_generator()}, {CONNECTIONS} connections, 1 s runs\n")
    rounds = scaled(9, 3)
    rows = []
    with _server.scratch_directory() as scratch:
        stack = _server.gunicorn(Path(scratch), pool_threads=8)
        try:
            contenders = [
                Contender("Flask bare", stack, "/bare", "Flask bare"),
                Contender("Flask bare again (A/A control)", stack, "/bare-again", "Flask bare"),
                Contender("Flask + BgTask", stack, "/inline", "Flask bare"),
                Contender("WSGI bare", stack, "/wsgi", "WSGI bare"),
                Contender("WSGI + middleware", stack, "/wsgi-bgtask", "WSGI bare"),
            ]
            for contender in contenders:
                stack.warm(contender.path)
            for keep_alive in (True, False):
                runs, retried = interleaved_loads(
                    contenders,
                    rounds=rounds,
                    connections=CONNECTIONS,
                    seconds=1,
                    keep_alive=keep_alive,
                )
                mode = "keep-alive" if keep_alive else "new connection"
                for contender in contenders:
                    mine = runs[contender.label]
                    is_bare = contender.label == contender.bare
                    throughput = paired(runs, contender.label, contender.bare, "throughput")
                    p50 = paired(runs, contender.label, contender.bare, "p50")
                    cpu = paired(runs, contender.label, contender.bare, "cpu_per_request")
                    verdict = ""
                    if not is_bare and "A/A" not in contender.label:
                        verdict = (
                            f"{_verdict(throughput >= TARGET)} (from CPU: "
                            f"{_verdict(1 / cpu >= TARGET)})"
                        )
                    rows.append(
                        [
                            mode,
                            contender.label,
                            f"{statistics.median(r.throughput for r in mine):.0f}",
                            "" if is_bare else f"{throughput:.3f}",
                            f"{statistics.median(r.p50 for r in mine) * 1000:.2f}",
                            "" if is_bare else f"{p50:.2f}",
                            f"{statistics.median(r.cpu_per_request for r in mine) * 1e6:.0f}",
                            "" if is_bare else f"{cpu:.3f}",
                            f"{statistics.median(busiest_share(r.split) for r in mine):.0%}",
                            sum(r.errors for r in mine),
                            verdict,
                        ]
                    )
                if retried:
                    print(f"({mode}: {retried} skewed run(s) run again)")
        finally:
            stack.server.stop()
    print_table(
        [
            "connection",
            "contender",
            "req/s",
            "x bare",
            "p50 ms",
            "p50 x bare",
            "CPU µs/req",
            "CPU x bare",
            "busiest worker",
            "errors",
            "target >= 0.97",
        ],
        rows,
    )
    print(
        f"\n{rounds} interleaved rounds; medians of the values and of the per-round ratios. "
        "CPU: the workers' user + system time per request served."
    )


if __name__ == "__main__":
    main()
