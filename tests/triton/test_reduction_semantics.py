"""Triton reductions over a length-1 axis, the shapes our kernels produce.

On an H100 with Triton 3.6 a tl.sum of a 3-D broadcast product over a
length-1 axis ([16, 1, 64] over axis 1) returned several times the right
value; the kernels now branch around it (sum_backward._SIZE1_REDUCTION).
These probes keep the remaining reduction shapes honest on every device the
suite runs on (the GPU, and the interpreter in CI).
"""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl


@triton.jit
def _bmr_kernel(w_ptr, p_ptr, out_ptr, J: tl.constexpr, I: tl.constexpr, B: tl.constexpr):
    """out[J, B] = sum_i w[J, I] * p[I, B] by broadcast-multiply-reduce."""
    oj, oi, ob = tl.arange(0, J), tl.arange(0, I), tl.arange(0, B)
    w = tl.load(w_ptr + oj[:, None] * I + oi[None, :])
    p = tl.load(p_ptr + oi[:, None] * B + ob[None, :])
    tl.store(out_ptr + oj[:, None] * B + ob[None, :], tl.sum(w[:, :, None] * p[None, :, :], axis=1))


@triton.jit
def _row_sum_kernel(f_ptr, out_ptr, N: tl.constexpr, B: tl.constexpr):
    """out[N] = sum_b f[N, B] (the input backward's per-node totals)."""
    on, ob = tl.arange(0, N), tl.arange(0, B)
    tl.store(out_ptr + on, tl.sum(tl.load(f_ptr + on[:, None] * B + ob[None, :]), axis=1))


# Shapes of a 3-D product reduced over its middle axis. On an H100 with
# Triton 3.6 the short middle axes (1, 2, 4) summed wrongly, and axis 8
# came back with tf32 rounding (~1e-3): the compiler turns such a
# multiply-reduce into a tensor-core dot. The kernels therefore write their
# dots explicitly (precision chosen by launch.dot_precision) and never build
# such products; these probes say whether a Triton version still does this.
KNOWN_BAD_ON_CUDA = {(16, 1, 64), (16, 2, 64), (16, 4, 64)}
TF32_ON_CUDA = {(16, 8, 64)}
SHAPES_3D = [(16, 1, 64), (16, 2, 64), (16, 4, 64), (16, 8, 64), (1, 16, 64), (32, 16, 1),
             (16, 2, 1), (4, 2, 16)]


@pytest.mark.parametrize("shape", SHAPES_3D)
def test_broadcast_reduce_3d(shape, device):
    j, i, b = shape
    if device.type == "cuda" and shape in KNOWN_BAD_ON_CUDA:
        pytest.xfail("Triton 3.6 on an H100: short reduction axis of a 3-D product")
    g = torch.Generator().manual_seed(0)
    w = torch.rand(j, i, generator=g).to(device)
    p = torch.rand(i, b, generator=g).to(device)
    out = torch.empty(j, b, device=device)
    _bmr_kernel[(1,)](w, p, out, J=j, I=i, B=b)
    tol = 5e-3 if device.type == "cuda" and shape in TF32_ON_CUDA else 1e-5
    torch.testing.assert_close(out, w @ p, rtol=tol, atol=tol)


@pytest.mark.parametrize("n,b", [(32, 1), (1, 64), (64, 1), (16, 2), (32, 2), (4, 4)])
def test_row_sum_2d(n, b, device):
    """2-D reductions over a short axis: the input backward and EM kernels
    rely on these (batch 1, one child)."""
    f = torch.rand(n, b, generator=torch.Generator().manual_seed(1)).to(device)
    out = torch.empty(n, device=device)
    _row_sum_kernel[(1,)](f, out, N=n, B=b)
    torch.testing.assert_close(out, f.sum(1), rtol=1e-5, atol=1e-5)
