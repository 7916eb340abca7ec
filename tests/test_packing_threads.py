"""The batched packing path's copy threads (backends/common/packing.py:
`_ChunkRing` with a pool, when `COPY_THREADS` is set): full chunks are
filled and uploaded on worker threads while the caller reads the next
tensors, and a chunk is refilled only once its task has finished. Run with
CPU targets, as in tests/test_packing_batched.py, which compares every
model and chunk size on the default path."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
import torch

import pccompiler as pc
from pccompiler import passes
from pccompiler.backends.common import packing


def _compiled():
    model = pc.lower(pc.pd((4, 4), 6, split_intervals=2, num_cats=5, seed=2))
    return model, passes.compile_model(model, backend="torch").layout


def _pack(fn, model, layout, **kwargs):
    s = torch.full((int(layout.num_sum_params),), float("nan"))
    i = torch.full((int(layout.num_input_params),), float("nan"))
    fn(packing._jobs(model, layout, s, i), {t.name: t for t in model.tensors}, **kwargs)
    return s, i


def test_slow_copy_tasks_on_the_ring_still_pack_the_same_bits(monkeypatch):
    """Every fifth task stalls between filling its chunk and uploading it
    while the other thread runs the next ones: a chunk refilled before its
    task had finished would upload the next chunk's bytes."""
    model, layout = _compiled()
    want = _pack(packing._pack_jobs, model, layout)
    fill_and_upload = packing._ChunkRing._fill_and_upload
    threads = set()
    calls = itertools.count()

    def slow(self, pieces, chunk, dest):
        threads.add(threading.current_thread().name)
        torch.cat(pieces, out=chunk)
        if next(calls) % 5 == 0:
            time.sleep(0.01)
        return fill_and_upload(self, [], chunk, dest)

    monkeypatch.setattr(packing._ChunkRing, "_fill_and_upload", slow)
    monkeypatch.setattr(packing, "COPY_THREADS", 2)
    got = _pack(packing._pack_batched, model, layout, chunk_bytes=256, segment_bytes=4096)
    for w, g in zip(want, got):
        assert torch.equal(w.view(torch.int32), g.view(torch.int32))
    assert threads and all(name.startswith("pcc-pack") for name in threads)


def test_a_model_that_fits_one_chunk_is_copied_inline(monkeypatch):
    model, layout = _compiled()
    threads = set()
    fill_and_upload = packing._ChunkRing._fill_and_upload

    def record(self, pieces, chunk, dest):
        threads.add(threading.current_thread().name)
        return fill_and_upload(self, pieces, chunk, dest)

    monkeypatch.setattr(packing._ChunkRing, "_fill_and_upload", record)
    monkeypatch.setattr(packing, "COPY_THREADS", 2)
    _pack(packing._pack_batched, model, layout)
    assert threads == {threading.current_thread().name}


def test_a_failing_copy_task_raises_in_the_caller(monkeypatch):
    model, layout = _compiled()

    def fail(self, pieces, chunk, dest):
        raise RuntimeError("copy failed")

    monkeypatch.setattr(packing._ChunkRing, "_fill_and_upload", fail)
    monkeypatch.setattr(packing, "COPY_THREADS", 2)
    with pytest.raises(RuntimeError, match="copy failed"):
        _pack(packing._pack_batched, model, layout, chunk_bytes=256)
