"""Timestamps for state, events and deadlines.

UNIX seconds, anchored to the wall clock once per process and advanced by the
monotonic clock, so they never go backwards and the gaps between them are true
durations. ``time.time()`` alone can be slewed or stepped (NTP, a VM's clock):
a task could then seem to end before its dependent started, or take less time
than it slept.
"""

from __future__ import annotations

import time

_WALL_ANCHOR = time.time()
_MONOTONIC_ANCHOR = time.perf_counter()


def now() -> float:
    """Seconds since the epoch, monotonic within this process."""
    return _WALL_ANCHOR + (time.perf_counter() - _MONOTONIC_ANCHOR)
