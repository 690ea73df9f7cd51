"""Memory around a collector run: no cycle collection while it reads rows, and what it freed
given back to the operating system afterwards.

A run reads up to millions of rows into tuples of strings and numbers, garbage without cycles
that reference counting frees. Python's cycle collector, triggered by every 700 allocations,
would walk the rows in flight again and again: at 100k users, 0.2-0.45 s of each per-user
collector's run (docs/benchmarks.md). So it is paused while any run reads.

glibc keeps freed memory in the process for reuse, and a run frees a lot: rows read in chunks,
the database driver's buffers, the previous result. Between runs the exporter holds only its
snapshot, so returning the free pages (malloc_trim) makes its RSS what the snapshot needs, not
the highest it ever reached. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import threading
from collections.abc import Callable, Iterator


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the system; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class _CyclePause:
    """Counted, so that runs overlapping in other threads keep the collector paused until the
    last one ends; it is resumed only if it was running when the first one began."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._resume = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._resume:
                    gc.enable()


cycle_collection_paused = _CyclePause()
