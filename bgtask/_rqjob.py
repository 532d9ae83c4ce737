"""What an RQ worker runs for each bgtask job: check, claim, run, record progress.

RQ imports ``bgtask.rq.run_job`` by name for every job (this function). The tasks declared
for a queue by the RQBackends built in the worker process (``rq worker -c module`` imports
the module that builds them) are its allow-list; without one, a job that was queued with
declared tasks is refused, and other jobs run under RQ's own trust model (any importable
function, names checked before any import).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from ._allowlist import plain
from ._claim import claim_for_worker
from ._job import TasksFailed, refuse
from ._job import run_payload as _run_payload

if TYPE_CHECKING:
    from ._allowlist import AllowList

__all__ = ["ALLOW_LISTS", "PROGRESS_KEY", "run_job"]

logger: Final = logging.getLogger("bgtask")

#: Where a job keeps the indexes of its tasks that succeeded, for a retry to skip them.
PROGRESS_KEY: Final = "bgtask_done"
#: The tasks declared for each queue (by name) by the RQBackends of this process.
ALLOW_LISTS: Final[dict[str, AllowList]] = {}


def run_job(payload: dict[str, Any]) -> None:
    """What an RQ worker runs for one request's collection (queued by :class:`RQBackend`).

    With tasks declared for the job's queue in this process (the worker imported the
    module that builds its ``RQBackend``), only those run; a job naming any other is
    refused whole. Raises ``TasksFailed`` when a task failed, so RQ marks the job failed
    and applies its retries; each task that succeeded is recorded in ``job.meta`` and
    skipped by a retry.

    >>> from bgtask import BackgroundTasks
    >>> from bgtask._payload import encode
    >>> run_job(encode(BackgroundTasks()))
    """
    from rq import get_current_job

    job = get_current_job()
    job_id = None if job is None else plain(job.id)  # whoever wrote the job chose it
    name = "an RQ job" if job is None else f"RQ job {job_id}"
    allowed = None if job is None else ALLOW_LISTS.get(job.origin)
    if allowed is None and isinstance(payload, dict) and payload.get("declared") is True:
        queue = "its queue" if job is None else f"queue {job.origin!r}"
        raise refuse(
            name,
            f"it was queued with declared tasks, and this worker declares none for {queue}; "
            "start the worker with `rq worker -c yourapp.module ...`, where yourapp.module "
            "builds that RQBackend(queue, tasks=[...]) (or from a worker script that imports it)",
        )
    done: set[int] = set()
    if job is not None:
        done.update(job.meta.get(PROGRESS_KEY, ()))

    def admit(names: list[str]) -> bool:
        if job is None or claim_for_worker(job.connection, job.id) != "web":
            return True
        logger.warning(
            "skipping RQ job %s: its hand-off timed out and the web process ran its tasks "
            "itself: %s",
            job_id,
            ", ".join(names),
        )
        return False

    def record_progress() -> None:
        if job is None:
            return
        job.meta[PROGRESS_KEY] = sorted(done)
        try:
            job.save_meta()  # type: ignore[no-untyped-call]
        except Exception:
            # The task did succeed: never turn that into a failure.
            logger.warning(
                "could not record the progress of RQ job %s; a retry of it may run tasks "
                "that already succeeded",
                job_id,
                exc_info=True,
            )

    failures: list[tuple[str, BaseException]] = []
    not_done = _run_payload(
        payload, done, record_progress, allowed=allowed, job=name, admit=admit, failures=failures
    )
    if not_done:
        # RQ keeps this exception's text and traceback: each failed task's own is in it.
        raise TasksFailed.naming(not_done, failures)
