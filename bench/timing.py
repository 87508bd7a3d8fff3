"""Wall-time helpers shared by the benchmarks (imported as `timing` from a script in bench/)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeat: int, warmup: bool = True) -> tuple[float, float]:
    """(median, minimum) wall time of `repeat` calls of fn, seconds; after one warm-up call unless
    warmup=False. On a shared machine the minimum is the better estimate of a kernel's own cost."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)
