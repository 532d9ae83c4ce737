"""End-to-end harness: servers on 127.0.0.1, a bounded load generator, the workers' counters.

Load comes from wrk (``apt-get install wrk``) when it is installed: C, so it leaves the two
cores to the server; without it a Python client with threads stands in (slower, noted in the
output). Every run is bounded in time and ends by itself.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench._server_app import FINISHED, QUEUED, REQUESTS, SLOTS
from tests.helpers.servers import Server, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

WORKERS = 2
THREADS = 8
WRK = shutil.which("wrk")

_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "micros": %d, "p50": %d, "p99": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def read_counters(directory: Path) -> dict[int, tuple[int, ...]]:
    """Every worker's counters (requests, queued, finished), by pid."""
    counts = {}
    for path in directory.iterdir():
        data = path.read_bytes()
        if len(data) == 8 * SLOTS:
            counts[int(path.name)] = tuple(memoryview(data).cast("q"))
    return counts


@dataclass
class Totals:
    requests: int = 0
    queued: int = 0
    finished: int = 0
    per_worker: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, directory: Path) -> Totals:
        counts = read_counters(directory)
        return cls(
            requests=sum(c[REQUESTS] for c in counts.values()),
            queued=sum(c[QUEUED] for c in counts.values()),
            finished=sum(c[FINISHED] for c in counts.values()),
            per_worker={pid: c[REQUESTS] for pid, c in counts.items()},
        )

    @property
    def backlog(self) -> int:
        """Tasks queued and not finished yet."""
        return self.queued - self.finished


@dataclass
class Run:
    """One load run against one path."""

    requests: int
    seconds: float
    p50: float
    p99: float
    errors: int
    finished: int
    backlog_mid: int
    backlog_end: int
    split: list[int]
    drain_seconds: float
    #: CPU seconds (user + system) the server's workers spent during the run.
    cpu_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @property
    def tasks_per_second(self) -> float:
        return self.finished / self.seconds

    @property
    def cpu_per_request(self) -> float:
        """Worker CPU seconds per request served (idle and queueing time do not count)."""
        return self.cpu_seconds / max(1, self.requests)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


class Stack:
    """A running server and the directory of its workers' counters."""

    def __init__(
        self, server: Server, stats: Path, name: str, *, retry_skewed: bool = True
    ) -> None:
        self.server = server
        self.stats = stats
        self.name = name
        #: uvicorn's workers share one socket: a skewed split is its normal, not bad luck.
        self.retry_skewed = retry_skewed

    @property
    def url(self) -> str:
        return self.server.url

    def totals(self) -> Totals:
        return Totals.of(self.stats)

    def answers(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
            connection.request("GET", "/")
            connection.getresponse().read()
            connection.close()
        except OSError:
            return False
        return True

    def warm(self, path: str) -> None:
        """A few requests with new connections, so that every worker has imported and counted."""
        for _ in range(20):
            connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()

    def warm_every_worker(self, path: str, workers: int) -> None:
        """Warm until every worker has counted a request (its counters file exists)."""

        def every_worker_served() -> bool:
            self.warm(path)
            return len(read_counters(self.stats)) >= workers

        wait_for(every_worker_served, what=f"all {workers} workers to serve a request")

    def wait_drained(self, timeout: float = 60.0) -> float:
        """Seconds until every queued task has finished (the backlog is zero)."""
        started = time.perf_counter()
        wait_for(lambda: self.totals().backlog <= 0, timeout=timeout, what="the backlog to drain")
        return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process(Server):
    """A server command on a port chosen beforehand, ready once ``ready(log)`` is true."""

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        port: int,
        env: dict[str, str],
        ready: str,
        *,
        workers: int = WORKERS,
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
        self.port = port
        try:
            wait_for(
                lambda: self._exited() or self.log().count(ready) >= workers,
                what=f"{workers} workers to start (log: {log_path})",
            )
        except BaseException:
            self.stop()
            raise

    def _exited(self) -> bool:
        if self.process.poll() is not None:
            msg = f"the server exited with {self.process.returncode}:\n{self.log()}"
            raise RuntimeError(msg)
        return False


def gunicorn(
    scratch: Path,
    *,
    pool_threads: int,
    workers: int = WORKERS,
    env: dict[str, str] | None = None,
    name: str = "gunicorn",
) -> Stack:
    """gunicorn gthread, ``WORKERS`` x ``THREADS``, each worker on its own SO_REUSEPORT socket.

    Without ``--reuse-port`` the workers share one listening socket, and which of them
    accepts wrk's connections (opened all at once) is luck: splits from 50/50 to 100/0 were
    seen run to run, and with keep-alive a worker only ever serves the connections it
    accepted. With it, the kernel spreads connections over the workers by address hash.
    """
    stats = scratch / f"{name}-{workers}-stats"
    stats.mkdir()
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"127.0.0.1:{port}", "--reuse-port",
        "--worker-class", "gthread", "--workers", str(workers), "--threads", str(THREADS),
        "--no-control-socket", "--error-logfile", "-",
        "bench._server_app:app",
    ]  # fmt: skip
    environment = {
        "BGTASK_BENCH_STATS": str(stats),
        "BGTASK_BENCH_POOL_THREADS": str(pool_threads),
        **(env or {}),
    }
    log = scratch / f"{name}-{workers}.log"
    server = Process(command, log, port, environment, "Booting worker", workers=workers)
    stack = Stack(server, stats, "gunicorn gthread")
    wait_for(stack.answers, what="gunicorn to answer")
    stack.warm_every_worker("/wsgi", workers)
    return stack


def uvicorn(scratch: Path) -> Stack | None:
    """Starlette under uvicorn, or None when uvicorn is not installed."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        return None
    stats = scratch / "uvicorn-stats"
    stats.mkdir()
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench._server_app:starlette_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
        "--no-access-log", "--log-level", "info",
    ]  # fmt: skip
    env = {"BGTASK_BENCH_STATS": str(stats)}
    server = Process(command, scratch / "uvicorn.log", port, env, "Application startup complete")
    stack = Stack(server, stats, "uvicorn", retry_skewed=False)
    wait_for(stack.answers, what="uvicorn to answer")
    stack.warm_every_worker("/starlette", WORKERS)
    return stack


def scratch_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="bgtask-bench-")


def load(stack: Stack, path: str, *, connections: int, seconds: float, keep_alive: bool) -> Run:
    """Closed-loop load: ``connections`` clients for ``seconds``, then wait for the backlog."""
    before = stack.totals()
    pids = list(before.per_worker)
    cpu_before = cpu_seconds(pids)
    if WRK:
        process, read_report = _start_wrk(stack, path, connections, seconds, keep_alive)
    else:
        process, read_report = (
            None,
            _start_python_clients(stack, path, connections, seconds, keep_alive),
        )
    time.sleep(seconds / 2)
    middle = stack.totals()
    report = read_report()
    cpu_after = cpu_seconds(pids)
    after = stack.totals()
    if process is not None:
        process.wait()
    drain_seconds = stack.wait_drained()
    split = sorted(
        (after.per_worker.get(pid, 0) - before.per_worker.get(pid, 0) for pid in after.per_worker),
        reverse=True,
    )
    return Run(
        requests=int(report["requests"]),
        seconds=report["seconds"],
        p50=report["p50"],
        p99=report["p99"],
        errors=int(report["errors"]),
        finished=after.finished - before.finished,
        backlog_mid=middle.backlog,
        backlog_end=after.backlog,
        split=split,
        drain_seconds=drain_seconds,
        cpu_seconds=cpu_after - cpu_before,
    )


def _start_wrk(
    stack: Stack, path: str, connections: int, seconds: float, keep_alive: bool
) -> tuple[subprocess.Popen[str], Callable[[], dict[str, float]]]:
    script = Path(tempfile.gettempdir()) / "bgtask-bench-report.lua"
    script.write_text(_WRK_REPORT)
    assert WRK is not None, "wrk is not installed"
    command = [
        WRK, "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(script),
    ]  # fmt: skip
    if not keep_alive:
        command += ["-H", "Connection: close"]
    command.append(stack.url + path)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def read_report() -> dict[str, float]:
        output, _ = process.communicate(timeout=seconds + 30)
        lines = output.strip().splitlines()
        if not lines or not lines[-1].startswith("{"):
            msg = f"wrk gave no report (exit {process.returncode}):\n{output}"
            raise RuntimeError(msg)
        raw = json.loads(lines[-1])
        return {
            "requests": raw["requests"],
            "seconds": raw["micros"] / 1e6,
            "p50": raw["p50"] / 1e6,
            "p99": raw["p99"] / 1e6,
            "errors": raw["errors"],
        }

    return process, read_report


def _start_python_clients(
    stack: Stack, path: str, connections: int, seconds: float, keep_alive: bool
) -> Callable[[], dict[str, float]]:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0]
    deadline = time.perf_counter() + seconds

    def client(mine: list[float]) -> None:
        connection = None
        while time.perf_counter() < deadline:
            try:
                if connection is None or not keep_alive:
                    connection = http.client.HTTPConnection("127.0.0.1", stack.server.port, 10)
                started = time.perf_counter()
                connection.request("GET", path)
                connection.getresponse().read()
                mine.append(time.perf_counter() - started)
            except OSError:
                errors[0] += 1
                connection = None
            finally:
                if connection is not None and not keep_alive:
                    connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(mine,)) for mine in latencies]
    for thread in threads:
        thread.start()

    def read_report() -> dict[str, float]:
        for thread in threads:
            thread.join()
        every = sorted(latency for mine in latencies for latency in mine)
        return {
            "requests": len(every),
            "seconds": time.perf_counter() - started,
            "p50": statistics.median(every),
            "p99": every[int(len(every) * 0.99)],
            "errors": errors[0],
        }

    return read_report


def sequential(
    stack: Stack, path: str, *, requests: int, interval: float, keep_alive: bool
) -> list[float]:
    """One client, one request at a time, a new one every ``interval`` seconds (or at once
    when the last took longer): the latency of each, seconds."""
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=30)
    next_start = time.perf_counter()
    for _ in range(requests):
        pause = next_start - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        if not keep_alive:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=30)
        started = time.perf_counter()
        connection.request("GET", path)
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
        next_start = started + interval
    connection.close()
    return latencies


def stacks(scratch: Path, *, pool_threads: int, with_uvicorn: bool = True) -> Iterator[Stack]:
    """Start gunicorn (and uvicorn when asked and installed); yields each started stack."""
    yield gunicorn(scratch, pool_threads=pool_threads)
    if with_uvicorn:
        started = uvicorn(scratch)
        if started is not None:
            yield started


@dataclass
class Contender:
    """A path on a stack, compared with the same stack's bare path (``bare``, a label)."""

    label: str
    stack: Stack
    path: str
    bare: str


def task_contenders(
    gunicorn: Stack,
    uvicorn: Stack | None,
    task_ms: int,
    *,
    offload_label: str = "bgtask offload",
    default_async: bool = False,
) -> list[Contender]:
    """Every stack's bare app, the A/A control, and each way to run one ``task_ms`` task.

    ``offload_label`` names the sized pool's rows; ``default_async`` adds the default pool's
    async row.
    """
    sync, asynchronous = f"task=sync&ms={task_ms}", f"task=async&ms={task_ms}"
    bare = "Flask bare"
    listed = [
        Contender(bare, gunicorn, "/bare", bare),
        # The same bare app again: how far apart two identical contenders land (noise).
        Contender("Flask bare again (A/A control)", gunicorn, "/bare-again", bare),
        Contender("Flask call_on_close, sync", gunicorn, f"/bare?{sync}", bare),
        Contender("bgtask inline, sync", gunicorn, f"/inline?{sync}", bare),
        Contender("bgtask inline, async", gunicorn, f"/inline?{asynchronous}", bare),
        Contender(f"{offload_label}, sync", gunicorn, f"/offload?{sync}", bare),
        Contender(f"{offload_label}, async", gunicorn, f"/offload?{asynchronous}", bare),
        Contender("bgtask offload default, sync", gunicorn, f"/offload-default?{sync}", bare),
    ]
    if default_async:
        path = f"/offload-default?{asynchronous}"
        listed.append(Contender("bgtask offload default, async", gunicorn, path, bare))
    if uvicorn is not None:
        listed += [
            Contender("Starlette bare", uvicorn, "/starlette", "Starlette bare"),
            Contender("Starlette, sync", uvicorn, f"/starlette?{sync}", "Starlette bare"),
            Contender("Starlette, async", uvicorn, f"/starlette?{asynchronous}", "Starlette bare"),
        ]
    return listed


#: A keep-alive run where one worker served more than this share of the requests is run
#: again (once at most): wrk opens its connections all at once, and which worker accepts
#: them is luck; at 100/0 the throughput halves whatever the contender.
SKEWED = 0.75
RETRIES = 1


def interleaved_loads(
    contenders: list[Contender],
    *,
    rounds: int,
    connections: int,
    seconds: float,
    keep_alive: bool,
) -> tuple[dict[str, list[Run]], int]:
    """Each round loads every contender once, in an order rotated from round to round.

    Returns the runs by label and how many skewed keep-alive runs were run again.
    """
    runs: dict[str, list[Run]] = {contender.label: [] for contender in contenders}
    retried = 0
    for round_index in range(rounds):
        shift = round_index % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            for attempt in range(RETRIES + 1):
                run = load(
                    contender.stack,
                    contender.path,
                    connections=connections,
                    seconds=seconds,
                    keep_alive=keep_alive,
                )
                if (
                    not keep_alive
                    or not contender.stack.retry_skewed
                    or busiest_share(run.split) <= SKEWED
                    or attempt == RETRIES
                ):
                    break
                retried += 1
            runs[contender.label].append(run)
    return runs, retried


def busiest_share(split: list[int]) -> float:
    return max(split, default=0) / (sum(split) or 1)


def paired(runs: dict[str, list[Run]], label: str, bare: str, value: str) -> float:
    """Median over rounds of ``value`` of ``label`` divided by that of ``bare``, same round."""
    return float(
        statistics.median(
            getattr(mine, value) / getattr(theirs, value)
            for mine, theirs in zip(runs[label], runs[bare], strict=True)
        )
    )


def split_text(split: list[int]) -> str:
    total = sum(split) or 1
    return "/".join(f"{100 * share / total:.0f}" for share in split)


def default_pool_threads() -> int:
    from bgtask._offload import _default_threads

    return _default_threads()


def load_generator() -> str:
    return "wrk" if WRK else "Python threads (wrk not installed: apt-get install wrk)"
