"""How a run that builds one year after another gives back what each year used: Arrow's pool and the C library's
heap keep freed memory for reuse, so without this a run's memory grows with the number of its years."""

from __future__ import annotations

import ctypes

import pyarrow as pa


def use_returnable_memory() -> None:
    """Arrow's buffers from the C library's malloc, whose freed memory `release_freed_memory` can hand back: with
    Arrow's bundled mimalloc a run kept 7-12 MiB more after every year even once its unused memory was released
    (4 legacy years, 0.25x: 279 -> 305 MiB held between years, peak 336 -> 430 MiB; with malloc: 261-265 MiB
    held, peak 336 -> 397 MiB). Set for the whole process, as a run builds one year after another."""
    if _LIBC is None:
        return
    # glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so a year's column
    # buffers come back from the heap instead, where freed space is fragmented and kept: the held memory then
    # grows year by year. A fixed threshold keeps large blocks mapped, returned to the system when freed (a
    # year's bronze audits, 3 reads of 2023 at full scale: 84 -> 91 MiB anonymous memory held after each, peak
    # 118 MiB; fixed: 76 MiB held every time, peak 82 MiB).
    _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def release_freed_memory() -> None:
    """Give back to the system what a year's conversion and audits freed, so that a run's memory stays flat over
    its years instead of growing with them: Arrow's pool and the C library's heap keep freed memory for reuse."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the one with `malloc_trim`); None elsewhere (musl, macOS)."""
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
_MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting threshold, held fixed
