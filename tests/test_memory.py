"""Memory a run freed goes back to the operating system, so RSS follows what is kept."""

from __future__ import annotations

import platform

import pytest

from exporter.memory import release_free_memory

GLIBC = platform.libc_ver()[0] == "glibc"


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; elsewhere nothing is released")
def test_freed_heap_pages_between_kept_objects_are_returned() -> None:
    # 2 KiB blocks come from glibc's heap (Python's own allocator takes up to 512 bytes); keeping
    # one block in 64 leaves the heap too fragmented for free() alone to shrink it.
    blocks = [bytes(2048) for _ in range(64 * 2048)]
    kept = blocks[::64]
    del blocks
    before = rss_kib()
    assert release_free_memory() is True
    after = rss_kib()
    assert before - after > 128 * 1024, (before, after)  # most of the 256 MiB freed
    assert len(kept) == 2048

