"""How many threads CPU-bound work that releases the GIL (NumPy, SciPy, Arrow) runs on."""

from __future__ import annotations

import os

__all__ = ["CPU_THREADS"]


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, as under taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


CPU_THREADS = max(1, min(_usable_cores(), 8))
"""One thread per usable core, at most eight (bootstrap blocks, head-to-head pairs, checks)."""
