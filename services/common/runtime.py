"""How govmeter's long-running processes (APIs, the metering worker, replay) set up the Python runtime."""

from __future__ import annotations

import gc


def tune_garbage_collector() -> None:
    """Collect reference cycles every 50,000 allocations instead of every 700.

    A worker batch or a bill computation allocates some 100,000 short-lived containers (decoded events, rows),
    none in reference cycles, so reference counting frees them; with the default threshold the cyclic collector
    ran all the time, a large share of the worker's CPU (docs/benchmark.md). Objects built at start-up are frozen:
    they live as long as the process, and the collector need not walk them again."""
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
