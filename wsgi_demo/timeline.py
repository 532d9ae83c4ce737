"""The timeline's rows: each request as phases (its response, then each of its tasks).

A request's events become one lane for the response (from *request received* to
*response sent*) and one lane per task (from *task started* to its end, with a mark when
it was queued), placed on the request's own time axis, so a person sees at a glance that
the response left before the tasks ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Event

__all__ = ["Lane", "Row", "rows_of"]

#: The narrowest a phase is drawn, in percent of the row: an instant stays visible.
MIN_WIDTH = 1.2

#: A task event's kind, as the timeline names the task's end.
_ENDS = {
    "task finished": "finished",
    "task failed": "failed",
    "task skipped": "skipped",
    "task discarded": "discarded",
    "task cut": "cut",
}


@dataclass
class Lane:
    """One phase of a request: its response, or one task."""

    label: str
    #: response, finished, failed, skipped, discarded, cut, or running (not ended yet).
    outcome: str
    mode: str = ""
    #: Milliseconds after the request arrived.
    start_ms: float = 0.0
    end_ms: float | None = None
    queued_ms: float | None = None
    #: Percent of the row's width.
    left: float = 0.0
    width: float = MIN_WIDTH
    queued_left: float | None = None
    started: bool = False


@dataclass
class Row:
    """One request: its path and its lanes, the response's first."""

    id: str
    path: str
    lanes: list[Lane] = field(default_factory=list)
    span_ms: float = 0.0


def rows_of(requests: list[tuple[str, list[Event]]]) -> list[Row]:
    """The timeline of each ``(request id, events)``, in the order given."""
    return [_row(rid, events) for rid, events in requests if events]


def _row(rid: str, events: list[Event]) -> Row:
    start = events[0]["time"]
    row = Row(rid, next((event["path"] for event in events if event["path"]), ""))
    response = Lane("response", "response")
    tasks: dict[str, Lane] = {}
    for event in events:
        at = (event["time"] - start) * 1000
        kind = event["event"]
        if kind == "response sent":
            response.end_ms = at
            continue
        if not event["task"]:
            continue
        lane = tasks.setdefault(
            event["task"], Lane(event["detail"].rsplit(".", 1)[-1], "running", event["mode"])
        )
        lane.mode = event["mode"] or lane.mode
        if kind == "task queued":
            lane.queued_ms = at
        elif kind == "task started":
            lane.start_ms, lane.started = at, True
        elif kind in _ENDS:
            lane.outcome = _ENDS[kind]
            lane.end_ms = at
            if lane.outcome != "finished" and lane.outcome != "failed":
                lane.start_ms = at  # never ran: a mark where it was given up
    for lane in tasks.values():
        if not lane.started and lane.outcome == "running":
            lane.start_ms = lane.queued_ms or 0.0  # queued, waiting for its turn
    row.lanes = [response, *tasks.values()]
    ends = [lane.end_ms or lane.start_ms for lane in row.lanes]
    row.span_ms = max(1.0, *ends, *(lane.queued_ms or 0.0 for lane in row.lanes))
    for lane in row.lanes:
        _place(lane, row.span_ms)
    return row


def _place(lane: Lane, span_ms: float) -> None:
    end = lane.end_ms if lane.end_ms is not None else lane.start_ms
    lane.left = min(100 - MIN_WIDTH, 100 * lane.start_ms / span_ms)
    lane.width = max(MIN_WIDTH, 100 * (end - lane.start_ms) / span_ms)
    lane.width = min(lane.width, 100 - lane.left)
    if lane.queued_ms is not None:
        lane.queued_left = 100 * lane.queued_ms / span_ms
