"""Keeping the server's resident memory near what it holds (docs/serve.md, "Memory bound").

glibc's malloc keeps freed memory for reuse: a freed array below its mmap threshold (which grows up to
32 MiB as large blocks are freed) stays in the heap of the thread that allocated it, and each worker
thread gets its own arena. A server that colorizes photo after photo in a thread pool so reached 7 GB
of resident memory holding 1 GB of sessions. `tune_allocator` lowers the mmap threshold to 128 KiB (every
image-sized buffer is then its own mapping, returned to the system when freed: a page fault per 4 KiB on
first touch, its cost measured in bench/serve_memory.py), and `trim` (``malloc_trim(0)``) returns the
free tops of the heaps after each request. Both are no-ops off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 128 * 1024

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim  # noqa: B018 -- glibc only: raises AttributeError elsewhere
            _libc.mallopt  # noqa: B018
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def tune_allocator(threshold: int = MMAP_THRESHOLD) -> bool:
    """Allocations of ``threshold`` bytes or more get their own mapping (freed at once); False off glibc."""
    libc = _glibc()
    return bool(libc and libc.mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1)


def trim() -> None:
    """Give the free memory at the top of every malloc heap back to the system (glibc only)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)


def rss_bytes(pid: int | str = "self") -> tuple[int, int]:
    """(resident, peak resident) bytes of a process, from /proc (0, 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return 0, 0
    kib = [int(fields.get(k, "0 kB").split()[0]) for k in ("VmRSS", "VmHWM")]
    return kib[0] * 1024, kib[1] * 1024


__all__ = ["rss_bytes", "trim", "tune_allocator"]
