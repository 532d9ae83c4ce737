"""The private event loop as a process sees it: fork, interpreter exit, gevent, threads, drain.

Anything that forks or exits runs in a subprocess of this interpreter, with a timeout, so a
hang fails the test instead of stalling the suite. The scripts run with ``-W error``, like the
suite, and print what they saw as JSON for the test to assert on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import logging
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest

from bgtask import BackgroundTask, BackgroundTasks, drain, set_exit_timeout

from .helpers.forking import run_python

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

#: How long a subprocess may take before the test fails (each should take about a second).
#: How long anything inside a test or a script waits for an event before giving up.
DEADLINE = 10.0
INSIDE_THE_LOOP = "await the coroutine instead"


def json_report(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a script printed last, once it is known to have exited cleanly."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout.splitlines()[-1])


# -- fork ------------------------------------------------------------------------------------

FORK_SCRIPT = """
    import asyncio, concurrent.futures, json, os, threading, traceback
    from tests.helpers.forking import read_child
    from bgtask import BackgroundTask, drain

    START_LOOP_FIRST = {start_loop_first}
    DEADLINE = 10.0

    def loop_thread_id():
        ids = []
        async def record():
            ids.append(threading.get_native_id())
        BackgroundTask(record)()
        return ids[0]

    def os_threads():
        return len(os.listdir("/proc/self/task"))

    report = {{}}
    if START_LOOP_FIRST:
        report["parent_loop_thread"] = loop_thread_id()
        # A task still in flight in the parent when it forks: the child owes it nothing.
        release = concurrent.futures.Future()
        held_started = threading.Event()
        async def held():
            held_started.set()
            await asyncio.wrap_future(release)
        holder = threading.Thread(target=BackgroundTask(held))
        holder.start()
        assert held_started.wait(DEADLINE)

    report["loop_before_fork"] = os_threads() > 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            child = {{"drained": drain(timeout=DEADLINE)}}
            child["threads_before"] = os_threads()
            child["loop_thread"] = loop_thread_id()
            child["threads_after"] = os_threads()
            os.write(write_end, json.dumps(child).encode())
            status = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(status)

    os.close(write_end)
    report["child"], report["child_exit_code"] = read_child(pid, read_end, DEADLINE)
    if START_LOOP_FIRST:
        release.set_result(None)
        holder.join(DEADLINE)
        report["parent_task_finished"] = not holder.is_alive()
    report["parent_loop_thread_after"] = loop_thread_id()
    report["parent_drained"] = drain(timeout=DEADLINE)
    print(json.dumps(report))
"""


@pytest.mark.slow
def test_forked_child_starts_its_own_loop_instead_of_the_parents() -> None:
    """A child forked while the parent's loop runs a task gets a fresh loop in a new thread."""
    # Python 3.12+ warns (DeprecationWarning) on fork() while other threads run, and the
    # parent's loop thread must run here: that warning is the point of the test, not a leak.
    options = ("-W", "error", "-W", "ignore::DeprecationWarning")
    result = run_python(FORK_SCRIPT.format(start_loop_first=True), options=options)

    report = json_report(result)
    assert report["child_exit_code"] == 0, report["child"]
    child = json.loads(report["child"])
    assert child == {
        "drained": True,
        "loop_thread": child["loop_thread"],
        "threads_before": 1,  # the parent's loop thread did not come along
        "threads_after": 2,  # the child's own loop thread
    }
    # Native ids: the parent's loop thread is still alive, so the kernel cannot reuse its id.
    assert child["loop_thread"] != report["parent_loop_thread"]
    assert report["loop_before_fork"] is True
    assert report["parent_task_finished"] is True
    assert report["parent_loop_thread_after"] == report["parent_loop_thread"]
    assert report["parent_drained"] is True


@pytest.mark.slow
def test_forked_child_runs_async_tasks_when_the_parent_never_started_the_loop() -> None:
    """A child of a parent that never ran an async task starts a loop of its own."""
    # No DeprecationWarning to silence: the parent has a single thread when it forks.
    result = run_python(FORK_SCRIPT.format(start_loop_first=False))

    report = json_report(result)
    assert report["child_exit_code"] == 0, report["child"]
    child = json.loads(report["child"])
    assert child["drained"] is True
    assert (child["threads_before"], child["threads_after"]) == (1, 2)
    assert report["loop_before_fork"] is False
    assert isinstance(report["parent_loop_thread_after"], int)
    assert report["parent_drained"] is True


@pytest.mark.slow
def test_forked_child_drains_its_own_tasks_when_it_exits() -> None:
    """A child that exits normally (like a gunicorn worker) drains the tasks it started."""
    script = """
        import asyncio, os, sys, threading
        from bgtask import BackgroundTask
        from tests.helpers.forking import read_child

        async def noop():
            pass

        BackgroundTask(noop)()  # the parent's loop thread exists when it forks
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            started = threading.Event()
            async def write_after_a_while():
                started.set()
                await asyncio.sleep(0.5)
                os.write(write_end, b"drained")
            threading.Thread(target=BackgroundTask(write_after_a_while), daemon=True).start()
            sys.exit(0 if started.wait(10) else 1)
        os.close(write_end)
        output, exit_code = read_child(pid, read_end, 10)
        print(exit_code, output)
    """
    # Python 3.12+ warns on fork() with the loop thread running (see the test above).
    result = run_python(script, options=("-W", "error", "-W", "ignore::DeprecationWarning"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "drained"]


# -- interpreter exit ------------------------------------------------------------------------

EXIT_DRAIN_SCRIPT = """
    import asyncio, sys, threading
    from pathlib import Path
    from bgtask import BackgroundTask

    marker = Path(sys.argv[1])
    started = threading.Event()

    async def write_after_a_while():
        started.set()
        await asyncio.sleep(0.5)
        marker.write_text("done")

    threading.Thread(target=BackgroundTask(write_after_a_while), daemon=True).start()
    if not started.wait(10):
        sys.exit("the task never started")
"""


@pytest.mark.slow
def test_exit_waits_for_an_async_task_still_running(tmp_path: Path) -> None:
    """A task started in a daemon thread finishes although the script returns first."""
    marker = tmp_path / "marker"

    result = run_python(EXIT_DRAIN_SCRIPT, str(marker))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert marker.read_text() == "done"


@pytest.mark.slow
def test_exit_deadline_cancels_a_slow_task_and_logs_its_name(tmp_path: Path) -> None:
    """Past BGTASK_EXIT_TIMEOUT the task is cancelled, named in an ERROR line, and unwinds."""
    script = """
        import asyncio, logging, sys, threading
        from pathlib import Path
        from bgtask import BackgroundTask

        logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
        finished, cancelled = Path(sys.argv[1]), Path(sys.argv[2])
        started = threading.Event()

        async def sleep_a_minute():
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.write_text("cancelled")
                raise
            finished.write_text("finished")

        threading.Thread(target=BackgroundTask(sleep_a_minute), daemon=True).start()
        if not started.wait(10):
            sys.exit("the task never started")
    """
    finished, cancelled = tmp_path / "finished", tmp_path / "cancelled"
    began = time.monotonic()

    result = run_python(script, str(finished), str(cancelled), env={"BGTASK_EXIT_TIMEOUT": "0.3"})

    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert (
        "ERROR bgtask exit deadline passed, cancelling 1 async task: __main__.sleep_a_minute"
    ) in result.stderr.splitlines()
    assert not finished.exists()
    assert cancelled.read_text() == "cancelled"
    # The default deadline is 10 s: far under it means the variable was honoured.
    assert elapsed < 8.0, f"exit took {elapsed:.1f} s"


@pytest.mark.slow
def test_exit_waits_for_a_spawned_coroutine_and_the_deadline_names_it(tmp_path: Path) -> None:
    """A fire-and-forget coroutine: drained at exit like its parent; cut by name if late."""
    script = """
        import asyncio, logging, sys
        from pathlib import Path
        from bgtask import BackgroundTask

        logging.basicConfig(format="%(levelname)s %(name)s %(message)s")
        done, seconds = Path(sys.argv[1]), float(sys.argv[2])

        async def webhook():
            await asyncio.sleep(seconds)
            done.write_text("done")

        async def signup():
            asyncio.create_task(webhook())

        BackgroundTask(signup)()
    """
    done = tmp_path / "done"
    quick = run_python(script, str(done), "0.3", env={"BGTASK_EXIT_TIMEOUT": "5"})
    assert quick.returncode == 0, quick.stderr
    assert quick.stderr == ""
    assert done.read_text() == "done"

    done.unlink()
    cut = run_python(script, str(done), "60", env={"BGTASK_EXIT_TIMEOUT": "0.3"})
    assert cut.returncode == 0, cut.stderr
    assert (
        "ERROR bgtask exit deadline passed, cancelling 1 async task: "
        "__main__.webhook (spawned by __main__.signup)"
    ) in cut.stderr.splitlines()
    assert not done.exists()


@pytest.mark.slow
def test_exit_drain_lets_a_task_use_a_worker_thread(tmp_path: Path) -> None:
    """A task drained at exit may still await asyncio.to_thread, as it could before."""
    # threading runs its exit hooks last-registered first: the executors' shutdown must have
    # been registered before bgtask's drain, or it refuses the task's work ("cannot schedule
    # new futures after shutdown") when concurrent.futures.thread was imported after the
    # loop started, as it is here.
    script = """
        import asyncio, sys, threading
        from pathlib import Path
        from bgtask import BackgroundTask

        marker = Path(sys.argv[1])

        async def use_a_worker_thread():
            await asyncio.to_thread(str)

        BackgroundTask(use_a_worker_thread)()  # earlier requests used to_thread too
        started = threading.Event()

        async def write_from_a_worker_thread():
            started.set()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(marker.write_text, "done")

        threading.Thread(target=BackgroundTask(write_from_a_worker_thread), daemon=True).start()
        if not started.wait(10):
            sys.exit("the task never started")
    """
    marker = tmp_path / "marker"

    result = run_python(script, str(marker))

    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "done"


@pytest.mark.slow
def test_infinite_exit_timeout_still_drains(tmp_path: Path) -> None:
    """BGTASK_EXIT_TIMEOUT=inf waits for the pending task instead of crashing at exit."""
    # inf (or anything over threading.TIMEOUT_MAX) passed to a lock raises OverflowError in
    # the exit hook: nothing drained, and threading then skips joining non-daemon threads.
    marker = tmp_path / "marker"

    result = run_python(EXIT_DRAIN_SCRIPT, str(marker), env={"BGTASK_EXIT_TIMEOUT": "inf"})

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert marker.read_text() == "done"


@pytest.mark.parametrize("seconds", [-1, -0.001, float("nan")])
def test_set_exit_timeout_refuses_what_is_not_zero_or_more_seconds(seconds: float) -> None:
    """A negative exit timeout, or NaN, is refused with ValueError."""
    with pytest.raises(ValueError, match="zero or more seconds"):
        set_exit_timeout(seconds)


# -- gevent ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_gevent_greenlets_run_async_tasks_concurrently_without_blocking_the_hub() -> None:
    """Under monkey-patching, greenlets' tasks overlap; waiting on them never blocks the hub."""
    pytest.importorskip("gevent")
    script = """
        from gevent import monkey
        monkey.patch_all()

        import asyncio, json, threading
        import gevent
        from bgtask import BackgroundTask, drain

        ticks = 0
        arrived = []
        both_running = asyncio.Event()
        results = {}

        def count():
            global ticks
            while True:
                ticks += 1
                gevent.sleep(0)

        async def work(name):
            arrived.append(name)
            if len(arrived) == 2:
                both_running.set()
            # Only returns if the other greenlet's task is on the loop at the same time.
            await asyncio.wait_for(both_running.wait(), 5)
            before = ticks
            await asyncio.sleep(0.2)
            results[name] = {
                "ticks_while_waiting": ticks - before,
                "loop_thread": threading.get_native_id(),
            }

        def wait_for_both():
            # Spawned after the workers, so their tasks are already handed to the loop.
            before = ticks
            drained = drain(timeout=5)
            return {
                "drained": drained,
                "tasks_done_by_then": len(results),
                "ticks_while_draining": ticks - before,
            }

        counter = gevent.spawn(count)
        greenlets = [gevent.spawn(BackgroundTask(work, name)) for name in ("first", "second")]
        drainer = gevent.spawn(wait_for_both)
        done = gevent.joinall([*greenlets, drainer], timeout=10)
        counter.kill()
        print(json.dumps({
            "done": len(done),
            "errors": [repr(g.exception) for g in greenlets if g.exception is not None],
            "results": results,
            "drain": drainer.value,
            "main_thread": threading.get_native_id(),
        }))
    """
    report = json_report(run_python(script))

    assert report["errors"] == []
    assert report["done"] == 3
    assert report["drain"]["drained"] is True
    assert report["drain"]["tasks_done_by_then"] == 2
    assert report["drain"]["ticks_while_draining"] > 0
    assert sorted(report["results"]) == ["first", "second"]
    for result in report["results"].values():
        assert result["ticks_while_waiting"] > 0
        assert result["loop_thread"] != report["main_thread"]
    assert len({result["loop_thread"] for result in report["results"].values()}) == 1


@pytest.mark.slow
def test_gevent_greenlets_and_pool_threads_share_request_collections_safely() -> None:
    """Monkey-patched first: greenlets queue while pool threads' tasks queue on the same
    collections; every task runs once, nothing hangs (the seal lock is a native one)."""
    pytest.importorskip("gevent")
    script = """
        from gevent import monkey
        monkey.patch_all()

        import json, logging
        import gevent
        from bgtask import BackgroundTaskMiddleware, OffloadPool, drain, get_background_tasks
        from tests.helpers.wsgi import serve

        # 300 requests at once fill the queue: some run inline, with a WARNING; fine here.
        logging.getLogger("bgtask").setLevel(logging.ERROR)

        ran = []

        def follow_up(n, i):
            ran.append((n, i))

        def fan_out(environ, n):
            # On a pool thread: adds to its own request's collection while it runs.
            for i in range(20):
                get_background_tasks(environ).add_task(follow_up, n, i)

        def app(environ, start_response):
            n = int(environ["QUERY_STRING"])
            tasks = get_background_tasks()
            tasks.add_task(fan_out, environ, n)
            for i in range(20, 40):
                tasks.add_task(follow_up, n, i)
                gevent.sleep(0)  # let the other greenlets queue in between
            start_response("200 OK", [])
            return [b"ok"]

        wrapped = BackgroundTaskMiddleware(app, offload=OffloadPool(threads=8))
        greenlets = [gevent.spawn(serve, wrapped, QUERY_STRING=str(n)) for n in range(300)]
        done = gevent.joinall(greenlets, timeout=20)
        print(json.dumps({
            "served": len(done),
            "errors": [repr(g.exception) for g in greenlets if g.exception is not None],
            "drained": drain(timeout=20),
            "ran": len(ran),
            "distinct": len(set(map(tuple, ran))),
        }))
    """
    report = json_report(run_python(script))
    assert report == {
        "served": 300,
        "errors": [],
        "drained": True,
        "ran": 300 * 40,
        "distinct": 300 * 40,
    }


# -- waiting on the loop from inside it ------------------------------------------------------


async def _never_runs(ran: list[str]) -> None:
    ran.append("inner")


def test_running_a_task_from_inside_the_loop_raises_instead_of_deadlocking() -> None:
    """An async task that calls BackgroundTask(...)() gets RuntimeError; nothing leaks."""
    ran: list[str] = []

    async def outer() -> None:
        with pytest.raises(RuntimeError, match=INSIDE_THE_LOOP):
            BackgroundTask(_never_runs, ran)()
        ran.append("outer")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BackgroundTask(outer)()
        gc.collect()

    assert ran == ["outer"]
    # The refused coroutine was closed, not left for the GC to warn "never awaited".
    assert [str(warning.message) for warning in caught] == []


def test_collection_logs_a_task_that_waits_on_the_loop_from_inside(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """Inside a collection the RuntimeError is the task's failure: logged, not a hang."""
    ran: list[str] = []

    async def run_nested() -> None:
        BackgroundTask(_never_runs, ran)()

    tasks = BackgroundTasks()
    handle = tasks.add_task(run_nested)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks()
        gc.collect()

    assert handle.state == "failed"

    failures = [record for record in bgtask_log.records if record.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "run_nested failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    error = failures[0].exc_info[1]
    assert isinstance(error, RuntimeError)
    assert INSIDE_THE_LOOP in str(error)
    assert ran == []
    assert [str(warning.message) for warning in caught] == []


def test_drain_from_inside_the_loop_raises() -> None:
    """drain() called by an async task refuses instead of waiting on itself forever."""
    checked: list[str] = []

    async def drain_inside() -> None:
        with pytest.raises(RuntimeError, match=INSIDE_THE_LOOP):
            drain()
        with pytest.raises(RuntimeError, match=INSIDE_THE_LOOP):
            drain(timeout=1.0)
        checked.append("refused")

    BackgroundTask(drain_inside)()

    assert checked == ["refused"]


# -- many threads ----------------------------------------------------------------------------


@pytest.mark.slow
def test_threads_starting_async_tasks_at_once_share_one_loop() -> None:
    """16 threads racing to run the first async task all run on a single loop thread."""
    script = """
        import asyncio, json, os, threading
        from bgtask import BackgroundTask

        THREADS = 16
        no_loop_before = len(os.listdir("/proc/self/task")) == 1
        barrier = threading.Barrier(THREADS)
        task_threads, loops, callers, errors = [], [], [], []

        async def record():
            task_threads.append(threading.get_ident())
            loops.append(id(asyncio.get_running_loop()))

        def start():
            try:
                callers.append(threading.get_ident())
                barrier.wait(10)
                BackgroundTask(record)()
            except BaseException as exc:
                errors.append(repr(exc))

        threads = [threading.Thread(target=start) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        print(json.dumps({
            "no_loop_before": no_loop_before,
            "errors": errors,
            "still_running": sum(thread.is_alive() for thread in threads),
            "task_threads": task_threads,
            "loops": loops,
            "callers": callers,
        }))
    """
    report = json_report(run_python(script))

    assert report["no_loop_before"] is True
    assert report["errors"] == []
    assert report["still_running"] == 0
    assert len(report["task_threads"]) == 16
    assert len(set(report["task_threads"])) == 1
    assert len(set(report["loops"])) == 1
    assert report["task_threads"][0] not in report["callers"]


# -- drain -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_drain_is_true_at_once_when_no_loop_was_ever_started() -> None:
    """In a process that never ran an async task, drain() returns True and starts nothing."""
    script = """
        import json, os
        from bgtask import drain

        def threads():
            return len(os.listdir("/proc/self/task"))

        print(json.dumps([threads(), drain(), drain(timeout=0), threads()]))
    """
    assert json_report(run_python(script)) == [1, True, True, 1]


async def _noop() -> None:
    pass


def test_drain_is_true_when_the_loop_is_idle() -> None:
    """Once every task has finished, drain() returns True with or without a timeout."""
    BackgroundTask(_noop)()

    assert drain(timeout=DEADLINE) is True
    assert drain() is True


def test_drain_with_zero_timeout_is_true_when_no_task_is_pending() -> None:
    """drain(timeout=0) polls: with no task pending it answers True at once."""
    busy = threading.Event()
    release = threading.Event()

    def occupy_the_loop_thread() -> None:
        busy.set()
        release.wait(DEADLINE)

    async def occupy_later() -> None:
        # A plain callback, not a task: nothing is pending, but the loop thread is busy.
        asyncio.get_running_loop().call_soon(occupy_the_loop_thread)

    # Asking the loop thread whether it is idle races its wake-up with no timeout to spare;
    # keeping that thread busy for a moment would make such a race lose every time.
    BackgroundTask(occupy_later)()
    try:
        assert busy.wait(DEADLINE)
        answer = drain(timeout=0)
    finally:
        release.set()

    assert answer is True


def test_drain_times_out_while_a_task_runs_then_waits_for_it() -> None:
    """drain() is False while another thread's task is held, and True once it has finished."""
    release: concurrent.futures.Future[None] = concurrent.futures.Future()
    started = threading.Event()
    finished = threading.Event()

    async def held() -> None:
        started.set()
        await asyncio.wrap_future(release)
        finished.set()

    thread = threading.Thread(target=BackgroundTask(held))
    thread.start()
    try:
        assert started.wait(DEADLINE)
        assert drain(timeout=0.05) is False
        assert not finished.is_set()
    finally:
        release.set_result(None)
    assert drain(timeout=DEADLINE) is True
    # drain() returned because the task ended, not because the caller thread noticed.
    assert finished.is_set()
    thread.join(DEADLINE)
    assert not thread.is_alive()


def test_collection_called_inside_the_loop_logs_instead_of_raising(
    bgtask_log: pytest.LogCaptureFixture,
) -> None:
    """A collection run from an async task never raises: its async task's refusal is logged."""
    ran: list[str] = []
    outcomes: list[str] = []

    async def run_collection() -> None:
        inner = BackgroundTasks()
        handle = inner.add_task(_never_runs, ran)
        inner.add_task(ran.append, "after")
        inner()
        outcomes.append(handle.state)

    BackgroundTask(run_collection)()
    assert outcomes == ["failed"]
    assert ran == []
    assert "_never_runs failed" in bgtask_log.text
    assert INSIDE_THE_LOOP in bgtask_log.text
    assert "skipped" in bgtask_log.text
