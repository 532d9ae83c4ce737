"""What every benchmark shares: quick mode, interleaved timing, medians, ratios, the table.

The machine is shared and noisy, so contenders are never timed one after the other: each
round runs every contender once, in an order rotated from round to round, and a ratio is
the median of the per-round ratios (both sides of a ratio saw the same noise).

Quick mode (``BGTASK_BENCH_QUICK=1`` or ``--quick``) runs fewer rounds and shorter loads.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PACKAGES = ("wsgi-bgtask", "flask", "werkzeug", "gunicorn", "uvicorn", "starlette", "asgiref")
QUICK = os.environ.get("BGTASK_BENCH_QUICK", "") not in ("", "0") or "--quick" in sys.argv


def scaled(full: int, quick: int) -> int:
    """``full`` normally, ``quick`` in quick mode."""
    return quick if QUICK else full


def interleave(
    contenders: dict[str, Callable[[int], float]],
    *,
    ops: int | dict[str, int],
    rounds: int,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Seconds per operation of each contender, one value per round, rounds interleaved.

    A contender times ``n`` operations itself (its set-up excluded) and returns seconds.

    ``ops`` is how many operations a contender runs per round (one number, or one per
    contender when some are much slower than others).
    """
    names = list(contenders)
    counts = ops if isinstance(ops, dict) else dict.fromkeys(names, ops)
    per_op: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(-warmup, rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            seconds = contenders[name](counts[name])
            if round_index >= 0:
                per_op[name].append(seconds / counts[name])
    return per_op


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median of per-round ratios: both values of a pair come from the same round."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("pass" if passed else "MISS")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table (Markdown-compatible, so it can be pasted into bench/README)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print(line(row))


def machine() -> str:
    """One line naming what these figures were measured on."""
    versions = []
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {', '.join(versions)}; "
        f"load average {load:.2f}{'; quick mode' if QUICK else ''}"
    )


def header(title: str) -> None:
    print(f"## {title}")
    print(machine())
    print()


def us(seconds: float) -> str:
    """Seconds as microseconds, three significant figures."""
    return f"{seconds * 1e6:.3g} µs"


def stopwatch() -> Callable[[], float]:
    """Start timing; the returned function gives the seconds elapsed."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started
