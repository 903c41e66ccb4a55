"""How a worker process tunes Python's cyclic garbage collector, once, after start-up.

The hot path makes many small lists and dicts (window states, batch records): with Python's
default thresholds the cyclic collector runs every 700 of them and rescans the app's long-lived
objects, 10-30% of the windowed rules' time (`benchmarks/evaluate_inprocess.py` runs with and
without it). What exists at start-up lives as long as the worker; most garbage is freed by
reference counting, so the collector can run far less often.
"""

from __future__ import annotations

import gc

# Collections of the youngest generation every this many net allocations of tracked objects;
# then the middle and the oldest generations as Python counts them.
THRESHOLDS = (50_000, 20, 100)


def tune_collector() -> None:
    """Move everything alive now out of the collector's sight and make it run less often."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
