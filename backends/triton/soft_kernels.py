"""Soft evidence in the triton input layer: literal weights of a logic
circuit (or any per-sample weights over a categorical input's categories).

A categorical input node n over variable v with parameter row p_n gets,
for sample b and per-sample weights s[b, v, c] (soft_t [V, K, B], each
weight row contiguous over the batch),

    value[n, b] = log sum_c p_n[c] * s[b, v, c]     (sum mode: WMC)
    value[n, b] = log max_c p_n[c] * s[b, v, c]     (max mode: weighted MPE)

in place of the indicator of the observed category. The gradient of the
root's log-value with respect to the weights comes from the node flows of
the ordinary triton backward (flow_n = d log root / d log value_n):

    d log root[b] / d s[b, v, c] = sum_{n over v} flow[n, b] * p_n[c] / exp(value[n, b])

scaled by the incoming gradient g[b]; nodes over the same variable add
into one row of grad_t [V, K, B] atomically.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from pccompiler.backends.triton.compat import cdiv
from pccompiler.backends.triton.plan import InputKernelPart
from pccompiler.errors import UnsupportedError

MAX_SOFT_CATS = 64      # categories unrolled per node (logic literals: 2)


@triton.jit
def soft_input_fwd_kernel(values_ptr, params_ptr, soft_ptr, node_vars_ptr, node_ps_ptr,
                          slot_start, num_nodes, batch, stride,
                          CATS: tl.constexpr, MODE_MAX: tl.constexpr, TILE_N: tl.constexpr,
                          BLOCK_B: tl.constexpr):
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    n_mask = offs_n < num_nodes
    mask = n_mask[:, None] & (offs_b < batch)[None, :]
    var = tl.load(node_vars_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    ps = tl.load(node_ps_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    srow = (slot_start + offs_n).to(tl.int64) * stride
    acc = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
    for c in tl.static_range(CATS):
        p = tl.load(params_ptr + ps + c, mask=n_mask, other=0.0)
        s = tl.load(soft_ptr + (var * CATS + c)[:, None] * batch + offs_b[None, :],
                    mask=mask, other=0.0)
        if MODE_MAX:
            acc = tl.maximum(acc, p[:, None] * s)
        else:
            acc += p[:, None] * s
    tl.store(values_ptr + srow[:, None] + offs_b[None, :], tl.log(acc), mask=mask)


@triton.jit
def soft_input_grad_kernel(grad_ptr, flows_ptr, values_ptr, params_ptr, gout_ptr,
                           node_vars_ptr, node_ps_ptr, slot_start, num_nodes, batch, stride,
                           CATS: tl.constexpr, TILE_N: tl.constexpr, BLOCK_B: tl.constexpr):
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    n_mask = offs_n < num_nodes
    b_mask = offs_b < batch
    mask = n_mask[:, None] & b_mask[None, :]
    var = tl.load(node_vars_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    ps = tl.load(node_ps_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    srow = (slot_start + offs_n).to(tl.int64) * stride
    f = tl.load(flows_ptr + srow[:, None] + offs_b[None, :], mask=mask, other=0.0)
    v = tl.load(values_ptr + srow[:, None] + offs_b[None, :], mask=mask, other=0.0)
    g = tl.load(gout_ptr + offs_b, mask=b_mask, other=0.0)
    live = mask & (f != 0.0)             # a node of value 0 (log -inf) has flow 0
    r = tl.where(live, f * tl.exp(-tl.where(live, v, 0.0)) * g[None, :], 0.0)
    for c in tl.static_range(CATS):
        p = tl.load(params_ptr + ps + c, mask=n_mask, other=0.0)
        tl.atomic_add(grad_ptr + (var * CATS + c)[:, None] * batch + offs_b[None, :],
                      r * p[:, None], mask=live)


def _tiles(part: InputKernelPart, batch: int) -> tuple[int, int, tuple[int, int]]:
    if part.dist != 0:
        raise UnsupportedError("soft evidence needs categorical inputs (logic literals), "
                               f"not distribution code {part.dist}")
    if part.params_per_node > MAX_SOFT_CATS:
        raise UnsupportedError(f"soft evidence over {part.params_per_node} categories "
                               f"(at most {MAX_SOFT_CATS})")
    block_b = max(1, min(128, triton.next_power_of_2(batch)))
    tile_n = max(1, min(64, 2048 // block_b))
    return tile_n, block_b, (cdiv(part.num_nodes, tile_n), cdiv(batch, block_b))


def soft_input_forward(part: InputKernelPart, values: torch.Tensor, params: torch.Tensor,
                       soft_t: torch.Tensor, mode_max: bool = False) -> None:
    """Write the partition's rows of `values` from soft_t [V, K, B] (fp32, contiguous)."""
    batch = values.shape[1]
    if part.num_nodes == 0 or batch == 0:
        return
    tile_n, block_b, grid = _tiles(part, batch)
    soft_input_fwd_kernel[grid](
        values, params, soft_t, part.node_vars, part.node_param_starts, part.slot_start,
        part.num_nodes, batch, values.stride(0), CATS=part.params_per_node,
        MODE_MAX=mode_max, TILE_N=tile_n, BLOCK_B=block_b)


def soft_input_grad(part: InputKernelPart, grad_t: torch.Tensor, flows: torch.Tensor,
                    values: torch.Tensor, params: torch.Tensor, gout: torch.Tensor) -> None:
    """Add the partition's share of d(gout . log root) / d soft into grad_t [V, K, B]."""
    batch = values.shape[1]
    if part.num_nodes == 0 or batch == 0:
        return
    tile_n, block_b, grid = _tiles(part, batch)
    soft_input_grad_kernel[grid](
        grad_t, flows, values, params, gout, part.node_vars, part.node_param_starts,
        part.slot_start, part.num_nodes, batch, values.stride(0), CATS=part.params_per_node,
        TILE_N=tile_n, BLOCK_B=block_b)
