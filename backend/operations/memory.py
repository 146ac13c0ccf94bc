"""Freed picture buffers go back to the operating system (glibc).

Decoding and compositing large pictures allocates buffers of tens of MB in worker threads.
glibc raises its mmap threshold after the first large free, so later buffers come from
per-thread heaps that keep their freed memory: with a few worker threads the studio held
~1.2 GB after a burst of 40 MP jobs whose live data never exceeded ~0.5 GB (bench/memory.py,
api-inpaint case: peak 1.27 GB, 1.22 GB after; with a fixed threshold: 0.56 GB, 78 MB after).
A fixed threshold of 1 MiB makes every such buffer its own mapping, returned on free. Small
allocations (Python objects) are unaffected. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3        # glibc's mallopt() parameter number
THRESHOLD_BYTES = 1024 * 1024
_done = False


def return_large_buffers_to_the_os() -> bool:
    """Fix glibc's mmap threshold at 1 MiB (once per process; True when it applied)."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):     # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES))
    if not _done:
        log.info("mallopt(M_MMAP_THRESHOLD) refused: large buffers stay in the heap")
    return _done
