"""ir.heap.retained_heap: inside a block, memory freed by one large array
is reused by the next without page faults; blocks nest; leaving the
outermost one (also through an exception) ends the hold; the large SDD
import (leaving its pages to the compile) and node compile enter it,
small ones do not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pccompiler.ir import heap
from pccompiler.ir.heap import holding, retained_heap

glibc = pytest.mark.skipif(heap._libc() is None, reason="glibc's mallopt is not available")
ENTRIES = 8 << 20                        # 64 MiB of float64: above any mmap threshold


_FAULTS_SCRIPT = """
import resource
import numpy as np
from pccompiler.ir import heap
from pccompiler.ir.heap import retained_heap

def faults(block):
    heap.release()
    with block:
        first = np.ones({entries})
        del first
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        second = np.ones({entries})
        n = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del second
    return n

print(faults(retained_heap(enabled=False)), faults(retained_heap()))
"""


def _faults_of_second_arrays() -> tuple[int, int]:
    """Minor page faults of filling a 64 MiB array right after an equal one
    was freed: outside a block, then inside one. Measured in a fresh
    interpreter: glibc's thresholds and free heap pages are process-wide
    state that earlier tests (torch, other large arrays) leave behind, and
    in a long test process the control arm can find its memory already
    resident."""
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT.format(entries=ENTRIES)],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PCC_RETAIN_HEAP": "1"})
    outside, inside = (int(v) for v in out.stdout.split())
    return outside, inside


@glibc
def test_freed_memory_is_reused_inside_a_block():
    outside, inside = _faults_of_second_arrays()
    # a fresh 64 MiB mapping needs >= 32 faults (2 MiB huge pages) or 16k (4 KiB)
    assert outside >= 32
    assert inside <= 4


@glibc
def test_blocks_nest_and_end_on_errors():
    assert not holding()
    with retained_heap():
        with retained_heap():
            assert holding()
        assert holding()
    assert not holding()
    with pytest.raises(RuntimeError):
        with retained_heap():
            raise RuntimeError("inside")
    assert not holding()
    with retained_heap(enabled=False):
        assert not holding()
    with retained_heap(release=False):
        assert holding()
    assert not holding()
    heap.release()


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("PCC_RETAIN_HEAP", "0")
    with retained_heap():
        assert not holding()


def test_who_enters_it(monkeypatch):
    """from_sdd and compile_model enter a block for inputs whose arrays
    pass 32 MiB only."""
    import pccompiler as pc
    from pccompiler.data.locate import SHARED_DATA_DIR
    path = SHARED_DATA_DIR / "circuits" / "sudoku_4.sdd"
    if not path.exists():
        pytest.skip("shared circuits missing")
    seen = []
    monkeypatch.setattr(heap, "retained_heap", lambda enabled=True, release=True: seen.append(
        (enabled, release)) or retained_heap(enabled, release))
    model = pc.from_sdd(path, form="nodes")
    pc.compile(model, backend="torch")
    assert seen == [(False, False), (False, True)]   # the import leaves its pages to compile
    assert heap.worth_it(heap.MIN_BYTES) and not heap.worth_it(heap.MIN_BYTES - 1)
