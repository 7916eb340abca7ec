"""The batched device packing path (backends/common/packing_upload.py:
`_pack_batched`: host chunks, one upload per chunk, merged device copies)
writes exactly what the per-tensor path (`_pack_jobs`) writes.

Run here with CPU targets (the chunks are then plain memory and each copy
synchronous, but the planning, chunk straddling, segmenting and merged
runs are the code the GPU runs); with a CUDA device the last test also
runs the real thing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler import ir, passes
from pccompiler.backends.common import packing_upload
from pccompiler.errors import PassError
from pccompiler.ir import pcir
from pccompiler.backends.common.packing import pack_parameters
from tests import factories

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from race_cases import block_sparse_model  # noqa: E402


def _hclt():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 2, size=(200, 12))
    return pc.lower(pc.hclt(data, num_latents=8, num_cats=2, seed=1))


def _pd():
    return pc.lower(pc.pd((4, 4), 6, split_intervals=2, num_cats=5, seed=2))


def _hmm():
    return pc.lower(pc.hmm(6, 5, 7, seed=3))           # homogeneous: tied groups


def _block_sparse():
    return block_sparse_model(0.5, num_inputs=96, num_sums=64, block=8, num_cats=5, seed=4)


def _mixed():
    """An HCLT whose every other parameter tensor is float64."""
    model = _hclt()
    params = {g.input.params if g.kind == pcir.INPUT else g.sum.weights
              for g in model.groups if g.kind != pcir.PRODUCT}
    names = sorted(t.name for t in model.tensors if t.name in params)
    wide = set(names[::2])
    for t in model.tensors:
        if t.name in wide:
            t.CopyFrom(ir.from_numpy(ir.to_numpy(t).astype(np.float64), t.name))
    return model


MODELS = {"hclt": _hclt, "pd": _pd, "hmm": _hmm, "block_sparse": _block_sparse, "mixed": _mixed,
          **{f"factory_{k}": (lambda f=f: f(seed=5)) for k, f in factories.ALL_FACTORIES.items()}}


def _pack(fn, model, layout, dtype, **kwargs):
    s = torch.full((int(layout.num_sum_params),), float("nan"), dtype=dtype)
    i = torch.full((int(layout.num_input_params),), float("nan"), dtype=dtype)
    jobs = packing_upload._jobs(model, layout, s, i)
    fn(jobs, {t.name: t for t in model.tensors}, **kwargs)
    return s, i


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    view = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    assert torch.equal(a.view(view), b.view(view))


@pytest.fixture(scope="module", params=sorted(MODELS))
def compiled(request):
    model = MODELS[request.param]()
    result = passes.compile_model(model, backend="torch")
    return request.param, result.model, result.layout


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes", [{}, {"chunk_bytes": 64, "segment_bytes": 256},
                                   {"chunk_bytes": 1000, "segment_bytes": 1 << 30},
                                   {"chunk_bytes": 256, "direct_bytes": 300},
                                   {"chunk_bytes": 4096, "direct_bytes": "median"}])
def test_batched_path_is_bit_identical_to_the_per_tensor_path(compiled, dtype, sizes):
    name, model, layout = compiled
    if sizes.get("direct_bytes") == "median":     # staged and direct tensors interleave
        sizes = dict(sizes, direct_bytes=int(np.median([len(t.raw_data) for t in model.tensors])))
    want = _pack(packing_upload._pack_jobs, model, layout, dtype)
    got = _pack(packing_upload._pack_batched, model, layout, dtype, **sizes)
    for w, g in zip(want, got):
        assert not torch.isnan(g).any()
        _same_bits(w, g)
    if dtype == torch.float64:
        ref_s, ref_i = pack_parameters(model, layout)
        np.testing.assert_array_equal(got[0].numpy(), ref_s)     # float32 -> 64 is exact
        np.testing.assert_array_equal(got[1].numpy(), ref_i)


def test_runs_merge_whole_stretches(compiled):
    """Input rows are one copy per contiguous stretch; an HCLT's sums of one
    shape are one copy: far fewer device copies than tensors."""
    name, model, layout = compiled
    s = torch.empty(int(layout.num_sum_params))
    i = torch.empty(int(layout.num_input_params))
    jobs = packing_upload._jobs(model, layout, s, i)
    groups, slow = packing_upload._plan_batched(jobs, {t.name: t for t in model.tensors})
    assert not slow
    runs = sum(len(list(packing_upload._runs(members))) for members in groups.values())
    assert sum(len(m) for m in groups.values()) == len(jobs)
    if name == "hclt":
        assert runs <= 4 < len(jobs)


def _errors_of_both_paths(error: type, model, layout) -> list[str]:
    """The message each packing path (per tensor, batched) raises as `error`."""
    messages = []
    for fn in (packing_upload._pack_jobs, packing_upload._pack_batched):
        with pytest.raises(error) as exc:
            _pack(fn, model, layout, torch.float32)
        messages.append(str(exc.value))
    return messages


def test_a_wrong_parameter_count_raises_the_same_pass_error():
    model = _hclt()
    layout = passes.compile_model(model, backend="torch").layout
    broken = pcir.Layout()
    broken.CopyFrom(layout)
    p = next(p for p in broken.placements if model.groups[p.group].kind == pcir.SUM)
    p.param_count += 1
    messages = _errors_of_both_paths(PassError, model, broken)
    assert messages[0] == messages[1]
    assert f"group {p.group}:" in messages[0] and "reserves" in messages[0]


def test_a_truncated_tensor_raises_the_same_load_error():
    from pccompiler.errors import LoadError
    model = _hclt()
    layout = passes.compile_model(model, backend="torch").layout
    g = next(g for g in model.groups if g.kind == pcir.INPUT)
    t = next(t for t in model.tensors if t.name == g.input.params)
    t.raw_data = t.raw_data[:-4]
    messages = _errors_of_both_paths(LoadError, model, layout)
    assert messages[0] == messages[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["hclt", "pd", "hmm", "block_sparse", "mixed"])
def test_cuda_packing_matches_the_cpu_packing(name):
    model = MODELS[name]()
    layout = passes.compile_model(model, backend="torch").layout
    for dtype in (torch.float32, torch.float64):
        want = _pack(packing_upload._pack_jobs, model, layout, dtype)
        for sizes in ({}, {"chunk_bytes": 64, "segment_bytes": 256},
                      {"chunk_bytes": 256, "direct_bytes": 300}):
            s = torch.full_like(want[0], float("nan"), device="cuda")
            i = torch.full_like(want[1], float("nan"), device="cuda")
            if sizes:
                jobs = packing_upload._jobs(model, layout, s, i)
                packing_upload._pack_batched(jobs, {t.name: t for t in model.tensors}, **sizes)
            else:
                packing_upload.pack_parameters_into(model, layout, s, i)
            _same_bits(want[0], s.cpu())
            _same_bits(want[1], i.cpu())


@pytest.mark.parametrize("name", ["mixed", "block_sparse"])
def test_the_inline_fast_read_matches_to_numpy(name):
    """`_values` reads an inline tensor with one length check instead of
    `ir.to_numpy`: same dtype, shape and bytes for float32 and float64."""
    model = MODELS[name]()
    for t in model.tensors:
        fast, slow = packing_upload._values(t, None), ir.to_numpy(t)
        assert fast.dtype == slow.dtype and fast.shape == slow.shape
        assert fast.tobytes() == slow.tobytes()


def test_an_empty_or_scalar_tensor_reads_like_to_numpy():
    for array in (np.zeros((0, 3), np.float32), np.float64(2.5).reshape(())):
        t = ir.from_numpy(array, "t")
        fast, slow = packing_upload._values(t, None), ir.to_numpy(t)
        assert fast.shape == slow.shape == array.shape and fast.tobytes() == slow.tobytes()


@pytest.mark.parametrize("min_bytes", [0, 1 << 40])
def test_packing_with_and_without_the_prefault_helper_is_identical(monkeypatch, min_bytes):
    """Below prefault.MIN_BYTES the CPU path skips the helper (and listing
    its ranges); above it the helper runs: the packed values are the same."""
    from pccompiler.backends.common import prefault
    model = _hclt()
    layout = passes.compile_model(model, backend="torch").layout
    expect_sum, expect_input = pack_parameters(model, layout)
    monkeypatch.setattr(prefault, "MIN_BYTES", min_bytes)
    sum_params = torch.full((int(layout.num_sum_params),), float("nan"), dtype=torch.float64)
    input_params = torch.full((int(layout.num_input_params),), float("nan"), dtype=torch.float64)
    packing_upload.pack_parameters_into(model, layout, sum_params, input_params)
    assert np.array_equal(sum_params.numpy(), expect_sum)
    assert np.array_equal(input_params.numpy(), expect_input)
