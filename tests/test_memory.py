"""No cycle collection while a run reads rows; memory a run freed goes back to the operating
system, so RSS follows what is kept."""

from __future__ import annotations

import gc
import platform
import threading

import pytest

from exporter.memory import cycle_collection_paused, release_free_memory

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



def test_cycle_collection_is_paused_inside_and_resumed_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), cycle_collection_paused():
        assert not gc.isenabled()
        raise RuntimeError("a failed run")
    assert gc.isenabled()


def test_overlapping_runs_resume_cycle_collection_when_the_last_one_ends() -> None:
    first_in, second_in, first_out = (threading.Event() for _ in range(3))
    seen: list[bool] = []

    def second_run() -> None:
        first_in.wait()
        with cycle_collection_paused():
            second_in.set()
            first_out.wait()
            seen.append(gc.isenabled())  # the first run has ended, this one has not

    thread = threading.Thread(target=second_run)
    thread.start()
    with cycle_collection_paused():
        first_in.set()
        second_in.wait()
    first_out.set()
    thread.join()
    assert seen == [False]
    assert gc.isenabled()


def test_cycle_collection_disabled_by_the_application_stays_disabled() -> None:
    gc.disable()
    try:
        with cycle_collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
