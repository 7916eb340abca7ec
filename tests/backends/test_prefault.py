"""Prefaulting fresh CPU buffers on a helper thread (backends/common/prefault.py):
the page ranges it asks for stay inside the tensors, it never changes a
value (even while another thread writes), it gives up quietly where the
kernel refuses, and packing with it writes what packing without it writes."""

from __future__ import annotations

import mmap
import resource
import sys

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import passes
from pccompiler.backends.common import packing_upload, prefault

PAGE = mmap.PAGESIZE


def _supported() -> bool:
    madvise = prefault._libc_madvise()
    if madvise is None:
        return False
    t = torch.empty(4 * PAGE, dtype=torch.uint8)
    ranges = prefault.page_ranges([(t, 0, t.numel())])
    return not ranges or madvise(ranges[0][0], ranges[0][1], prefault.MADV_POPULATE_WRITE) == 0


def test_page_ranges_stay_inside_the_tensor_and_merge_neighbours():
    t = torch.empty(10 * PAGE // 4 + 3, dtype=torch.float32)
    base, end = t.data_ptr(), t.data_ptr() + t.numel() * 4
    per_page = PAGE // 4
    ranges = prefault.page_ranges([(t, 0, per_page), (t, per_page, 2 * per_page),
                                   (t, 6 * per_page, 1), (t, 0, t.numel())])
    for address, length in ranges:
        assert address % PAGE == 0 and length % PAGE == 0 and length > 0
        assert base <= address and address + length <= end
    # the first two ranges touch: one entry (unless the tensor starts mid-page,
    # when the first page is left out and the entry is shorter)
    assert ranges[0][1] >= 2 * PAGE
    # a single element inside one page covers that whole page (it is inside the tensor)
    assert len(ranges) == 3 and ranges[1][1] == PAGE
    assert prefault.page_ranges([(t, 5, 0)]) == []


def test_values_are_untouched_while_another_thread_writes(monkeypatch):
    monkeypatch.setattr(prefault, "MIN_BYTES", 0)
    monkeypatch.setattr(prefault, "CALL_BYTES", 16 * PAGE)
    t = torch.empty(3 << 20, dtype=torch.float32)
    t[: t.numel() // 2] = 7.0                       # touched before
    with prefault.Prefault([(t, 0, t.numel())]):
        t[t.numel() // 2:] = torch.arange(t.numel() - t.numel() // 2, dtype=torch.float32)
    assert torch.all(t[: t.numel() // 2] == 7.0)
    assert torch.equal(t[t.numel() // 2:],
                       torch.arange(t.numel() - t.numel() // 2, dtype=torch.float32))


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _supported(),
                    reason="needs Linux 5.14+ (MADV_POPULATE_WRITE)")
def test_populated_pages_take_no_fault_when_written(monkeypatch):
    monkeypatch.setattr(prefault, "MIN_BYTES", 0)
    n = 64 << 20
    t = torch.empty(n, dtype=torch.uint8)
    p = prefault.Prefault([(t, 0, n)])
    with p:
        p.thread.join()                             # finish before writing
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t.numpy()[::PAGE] = 1
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < n // PAGE // 4, faults          # ~16k pages; a few faults, not one each


def test_a_refused_madvise_stops_the_helper_after_one_call(monkeypatch):
    calls = []

    def refuse(address, length, advice):
        calls.append(advice)
        return -1

    monkeypatch.setattr(prefault, "MIN_BYTES", 0)
    monkeypatch.setattr(prefault, "_libc_madvise", lambda: refuse)
    t = torch.empty(1 << 22, dtype=torch.uint8)
    with prefault.Prefault([(t, 0, t.numel())]):
        pass
    assert calls == [prefault.MADV_POPULATE_WRITE]


def test_no_thread_without_madvise_or_below_the_size_floor(monkeypatch):
    t = torch.empty(1 << 20, dtype=torch.uint8)
    with prefault.Prefault([(t, 0, t.numel())]) as p:       # 1 MB < MIN_BYTES
        assert p.thread is None
    monkeypatch.setattr(prefault, "MIN_BYTES", 0)
    monkeypatch.setattr(prefault, "_libc_madvise", lambda: None)
    with prefault.Prefault([(t, 0, t.numel())]) as p:
        assert p.thread is None


def test_packing_with_the_helper_writes_what_packing_without_it_writes(monkeypatch):
    rng = np.random.default_rng(0)
    model = pc.lower(pc.hclt(rng.integers(0, 3, size=(100, 10)), num_latents=6, num_cats=3,
                             seed=1))
    layout = passes.compile_model(model, backend="torch").layout

    def pack():
        s = torch.empty(int(layout.num_sum_params))
        i = torch.empty(int(layout.num_input_params))
        packing_upload.pack_parameters_into(model, layout, s, i)
        return s, i

    monkeypatch.setattr(prefault, "MIN_BYTES", 1 << 62)
    off = pack()
    started = []
    enter = prefault.Prefault.__enter__

    def counting_enter(self):
        out = enter(self)
        started.append(self.thread is not None)
        return out

    monkeypatch.setattr(prefault, "MIN_BYTES", 0)
    monkeypatch.setattr(prefault.Prefault, "__enter__", counting_enter)
    on = pack()
    assert started == [prefault._libc_madvise() is not None]
    assert torch.equal(off[0], on[0]) and torch.equal(off[1], on[1])
