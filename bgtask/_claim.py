"""Who runs an RQ job whose hand-off may or may not have reached Redis: web or worker.

When the enqueue fails after it was sent (a read timeout, a reset, bgtask's deadline),
Redis may have stored the job, or may still store it later (bytes in flight). The web
process then runs one script, atomically in Redis::

    job key exists                    -> "queued": a worker runs it; the web does not
    claim key holds "worker"          -> a worker ran it (RQ deleted the job); web does not
    otherwise: SET claim "web" EX 7d  -> "claimed": the web runs the tasks itself

and every worker run (retries included) starts with one, atomically too::

    claim key holds "web"             -> skip the job (WARNING)
    otherwise: SET claim "worker" EX 60 s if absent, run

Why no task runs twice: Redis runs scripts one at a time. If the web's script comes
before the job is stored, it claims, and every later worker run sees "web" and skips. If
it comes after, it finds the job (or, once RQ deleted a finished job, the worker's claim)
and does not claim. The worker's claim must outlive the web's script: the web accepts a
"claimed" answer only if it arrives within ``CLAIM_WINDOW`` (10 s) of the start of the
hand-off, the job cannot be stored before that start, so the script ran less than 10 s
after any worker claim, which lives 60 s. A web claim lives 7 days: only a job stored
or dequeued more than 7 days after its request could still run twice.

The price: a claim key per job for its first minute (about 70 bytes; the keys at any
moment are the jobs started in the last minute), one script call per job on the worker,
and none on the web's happy path. When the web gets no answer to its script either, it
does not run the tasks: they are lost if the job never arrived (at most once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["CLAIM_WINDOW", "claim_for_web", "claim_for_worker", "claim_key"]

#: Seconds from the start of a hand-off within which the web's claim must be answered.
CLAIM_WINDOW: Final = 10.0
#: A worker's claim outlives any web claim that could still be answered (6x the window).
WORKER_CLAIM_TTL: Final = 60
#: A web claim: how long a late job stays refused.
WEB_CLAIM_TTL: Final = 7 * 24 * 3600

_WEB: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'queued' end
local owner = redis.call('GET', KEYS[2])
if owner then return owner end
redis.call('SET', KEYS[2], 'web', 'EX', ARGV[1])
return 'claimed'
"""

_WORKER: Final = """
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], 'worker', 'EX', ARGV[1])
return 'worker'
"""


def claim_key(job_id: str) -> str:
    """The key that says who owns job ``job_id``.

    >>> claim_key("1f2e")
    'bgtask:claim:1f2e'
    """
    return f"bgtask:claim:{job_id}"


def claim_for_web(connection: Redis, job_key: str, job_id: str) -> str:
    """``"claimed"`` (the web runs the tasks), ``"queued"`` or ``"worker"`` (it does not)."""
    answer = connection.eval(_WEB, 2, job_key, claim_key(job_id), WEB_CLAIM_TTL)
    return _text(answer)


def claim_for_worker(connection: Redis, job_id: str) -> str:
    """``"web"`` (skip: the web ran the tasks) or ``"worker"`` (run them)."""
    answer = connection.eval(_WORKER, 1, claim_key(job_id), WORKER_CLAIM_TTL)
    return _text(answer)


def _text(answer: object) -> str:
    return answer.decode() if isinstance(answer, bytes) else str(answer)
