"""Shared by both emulators: how many calls fell inside the busiest 1-second window."""

from __future__ import annotations

from collections.abc import Iterable


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
