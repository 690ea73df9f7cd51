"""Give the memory a collector run has freed back to the operating system.

glibc keeps freed memory in the process for reuse, and a run frees a lot: rows read in chunks,
the database driver's buffers, the previous result. Between runs the exporter holds only its
snapshot, so returning the free pages (malloc_trim) makes its RSS what the snapshot needs, not
the highest it ever reached. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


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
