"""Keep freed memory in the process while one large import or compile runs.

Why. The import and compile of a 10^6-node SDD allocate and free about 13
GB of 10^7-entry numpy temporaries (100 MB each) while never holding more
than 2.6 GB. glibc's malloc hands every block above its mmap threshold (at
most 32 MiB) straight back to the kernel when it is freed, so each new
array is a fresh mapping: the kernel zeroes every page on its first write.
On the shared 2-core VM that zeroing (`clear_page_erms`, a third of all
samples under perf) cost 4-6 s of the 12-15 s (bench/results/
logic_import-cpu-2026-12-07.md), and arrays are too many and too spread
over numpy's own temporaries to reuse by hand.

`retained_heap()` tells glibc, for the duration of the block, to serve
every block from its heap (mallopt M_MMAP_MAX = 0) and to keep what is
freed at the heap's top (M_TRIM_THRESHOLD = 2^31 - 1): memory freed by one
step is handed to the next without a page fault, so only the peak is paid
for. Leaving the outermost block returns the free pages to the kernel
(malloc_trim) and sets the parameters to the values glibc's own adaptive
rule reaches in a process that frees large arrays (mmap threshold 32 MiB,
trim threshold 64 MiB): glibc has no call to read the previous values
back, and setting any of them stops that rule, so these are stated here
once. Blocks nest (a caller may hold one over from_sdd and compile).
from_sdd leaves its free pages for the compile that follows (release=False);
compile_model returns them.

Process-wide while it lasts: other threads' allocations in the main arena
are served the same way (correct, only not returned to the kernel until
the block ends). It does nothing outside glibc (macOS, musl, Windows), and
callers enter it only for inputs whose arrays pass 32 MiB (`worth_it`):
below that glibc's default already reuses the memory, and a small import
or compile changes no setting. PCC_RETAIN_HEAP=0 turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_KEEP = (2 ** 31 - 1, 0)                  # (trim threshold, mmap max) inside a block
_AFTER = {_M_MMAP_MAX: 65536, _M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 64 << 20}
MIN_BYTES = 32 << 20      # arrays below glibc's largest mmap threshold are reused anyway

_lock = threading.Lock()
_depth = 0


def _libc():
    """glibc's mallopt / malloc_trim, or None elsewhere (or when turned off)."""
    if os.environ.get("PCC_RETAIN_HEAP", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def worth_it(nbytes: int) -> bool:
    """Whether an input of about `nbytes` (its largest arrays, or the file)
    makes arrays that glibc would map and unmap one by one."""
    return nbytes >= MIN_BYTES


@contextlib.contextmanager
def retained_heap(enabled: bool = True, release: bool = True):
    """Inside: freed memory stays in the process for the next allocation
    (see the module docstring); `enabled=False` is a plain block.
    release=False leaves the free pages in the heap at the end (only the
    parameters are set back), for a large step that usually follows:
    from_sdd's for the compile of its Model, which reuses them and
    releases them when it ends (or call `release()`)."""
    global _depth
    libc = _libc() if enabled else None
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP[0])
            libc.mallopt(_M_MMAP_MAX, _KEEP[1])
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for param, value in _AFTER.items():
                    libc.mallopt(param, value)
                if release:
                    libc.malloc_trim(0)


def release() -> None:
    """Return the heap's free pages to the kernel now (malloc_trim), e.g.
    after a from_sdd whose Model is not compiled."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def holding() -> bool:
    """Whether a retained_heap block is open (for tests)."""
    return _depth > 0
