"""Handing memory back to the operating system after a large piece of work (an import)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
from typing import Any

log = logging.getLogger(__name__)


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def release_free_memory() -> None:
    """Collect garbage, then have glibc return its free pages (``malloc_trim``).

    Python gives its own small-object arenas back when they empty, but the C allocator keeps
    freed blocks (an import's buffers: arrays of 2,000 rows, encoded events) in its heaps, so
    a worker's resident memory would stay at its peak. Measured on a 30,000-row import: 162
    -> 129 MiB. A no-op where the C library has no ``malloc_trim`` (not glibc).
    """
    gc.collect()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        try:
            trim(0)
        except OSError:  # pragma: no cover - a C library that refuses
            log.debug("malloc_trim failed", exc_info=True)
