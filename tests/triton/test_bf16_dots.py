"""precision="bf16": the interpreter's bit rounding is bfloat16's own, and a
circuit with full 16-row blocks really computes in bf16 (different from
fp32, within the conformance tolerance of the float64 reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import pccompiler as pc
from pccompiler.backends.reference import evaluate
from pccompiler.backends.triton.dots import _round_bf16
from pccompiler.errors import BackendError


@triton.jit
def _round_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, _round_bf16(x), mask=mask)


def test_bit_rounding_is_round_to_nearest_even_bfloat16(device):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(200), np.exp(-20 * rng.random(40)),
                             [0.0, 1.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 0.5 + 2.0 ** -10]])
    x = torch.tensor(values, dtype=torch.float32, device=device)
    out = torch.empty_like(x)
    _round_kernel[(1,)](x, out, x.numel(), BLOCK=triton.next_power_of_2(x.numel()))
    torch.testing.assert_close(out, x.to(torch.bfloat16).to(torch.float32), rtol=0, atol=0)


def test_bf16_circuit_differs_from_fp32_within_tolerance(device):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 2, size=(200, 6))
    model = pc.lower(pc.hclt(data, num_latents=16, num_cats=2))
    x = data[:32]
    want = evaluate.log_prob(model, x)
    got = {p: pc.compile(model, backend="triton", device=str(device), precision=p)
           .log_prob(x).double().cpu().numpy() for p in ("ieee", "bf16")}
    assert np.abs(got["ieee"] - want).max() < 1e-5
    err = np.abs(got["bf16"] - want).max()
    assert 1e-5 < err < 5e-3 * np.abs(want).max()


def test_unknown_precision_is_refused(device):
    data = np.random.default_rng(2).integers(0, 2, size=(50, 4))
    with pytest.raises(BackendError, match="unknown dot precision 'fp8'"):
        pc.compile(pc.hclt(data, num_latents=4, num_cats=2), backend="triton",
                   device=str(device), precision="fp8")
