"""Fault in fresh CPU buffer pages on a second core while packing fills them.

A fresh engine buffer (`torch.empty`) is untouched memory: the first write
to each 4 KB page traps into the kernel, which zeroes and maps it. For
hclt512 (993 MB of parameters) that is about as long as the copy itself on
the 2-core VM (bench/results/cached_compile-cpu-2026-12-06.md: a strided
copy into a fresh buffer 0.8 s, into a touched one 0.33 s). Linux's
`madvise(MADV_POPULATE_WRITE)` (5.14+) maps pages writable without writing
to them, so a helper thread can populate the buffer, in the order packing
will write it, while the packing thread copies: the contents are never
touched, so the two threads need no ordering (a page the copy reaches first
is simply faulted by the copy, and populating a mapped page is a no-op).

Best effort only: on another OS, an older kernel or any madvise error the
helper stops and the copy faults the pages itself, as before.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import threading
from typing import Iterable

import torch

MADV_POPULATE_WRITE = 23        # linux/mman.h (5.14+)
# Below this many bytes in all, a thread is not worth starting.
MIN_BYTES = 32 << 20
# Bytes per madvise call: small enough that the helper stays close to the
# copy's order, big enough that the call overhead is nothing.
CALL_BYTES = 8 << 20

_madvise = None


def _libc_madvise():
    """libc's madvise (ctypes releases the GIL around the call), or None."""
    global _madvise
    if _madvise is None:
        fn = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = False
        _madvise = fn
    return _madvise or None


def page_ranges(ranges: Iterable[tuple[torch.Tensor, int, int]]) -> list[tuple[int, int]]:
    """[(address, bytes)] of the whole pages inside each (tensor, start,
    count) element range (rounded out to whole pages), in the given order;
    a range that touches or overlaps the one before is merged into it.
    Pages only partly inside the tensor are left out (they may belong to
    other memory)."""
    page = mmap.PAGESIZE
    out: list[tuple[int, int]] = []
    for tensor, start, count in ranges:
        if count <= 0:                  # an empty range asks for no page
            continue
        size = tensor.element_size()
        base = tensor.data_ptr()
        lo_limit = -(-base // page) * page
        hi_limit = (base + tensor.numel() * size) // page * page
        lo = max(lo_limit, (base + start * size) // page * page)
        hi = min(hi_limit, -(-(base + (start + count) * size) // page) * page)
        if hi <= lo:
            continue
        if out and out[-1][0] <= lo <= out[-1][0] + out[-1][1]:     # touches or overlaps
            out[-1] = (out[-1][0], max(hi, out[-1][0] + out[-1][1]) - out[-1][0])
        else:
            out.append((lo, hi - lo))
    return out


class Prefault:
    """`with Prefault(ranges):` populates the pages of `ranges` ((CPU tensor,
    start, count) in elements, in the order they will be written) on a
    helper thread for the duration of the block; leaving the block waits
    for the helper (it is cheap by then: the copy has faulted the rest)."""

    def __init__(self, ranges: Iterable[tuple[torch.Tensor, int, int]]):
        self.ranges = [r for r in ranges if r[0].device.type == "cpu"]
        self.thread: threading.Thread | None = None
        self.stop = False

    def __enter__(self) -> "Prefault":
        madvise = _libc_madvise()
        total = sum(count * t.element_size() for t, _, count in self.ranges)
        if madvise is not None and total >= MIN_BYTES:
            pages = page_ranges(self.ranges)
            self.thread = threading.Thread(target=self._run, args=(madvise, pages),
                                           name="pcc-prefault", daemon=True)
            self.thread.start()
        return self

    def _run(self, madvise, pages: list[tuple[int, int]]) -> None:
        for address, length in pages:
            pos = 0
            while pos < length:
                if self.stop:
                    return
                n = min(CALL_BYTES, length - pos)
                if madvise(address + pos, n, MADV_POPULATE_WRITE) != 0:
                    return          # unsupported here (EINVAL) or refused: the copy faults
                pos += n

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.stop = True
            self.thread.join()
            self.thread = None
