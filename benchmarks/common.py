"""What every benchmark shares: the FSDD clips, timing by medians, and one result row format."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spoken_digits.data import fsdd


@dataclass
class Row:
    """One comparison: what was timed, the reference's time, ours, their ratio and a quality check."""

    what: str
    reference: str
    reference_s: float | None
    ours_s: float
    check: str
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.reference_s is None else self.reference_s / self.ours_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def clips(data: str | None, limit: int | None = None) -> list[fsdd.Clip]:
    """FSDD clips from `data` or $FSDD_ROOT (never downloaded by a benchmark), optionally the first `limit`."""
    found = fsdd.index(fsdd.locate(data, download=False))
    return found[:limit] if limit else found


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of `repeats` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def paths(selection: list[fsdd.Clip]) -> list[Path]:
    return [c.path for c in selection]
