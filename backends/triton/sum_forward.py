"""Sum-layer forward kernels: value(parent) = logsumexp_k(log w + value(child)).

One program owns (parent block, row tile of the block, batch tile) and walks
the block's children in K-chunks with an *online* rescaled accumulation, so
each child value is read once:

    C   = values[child_slots[b, k], tb]            (gather, K-chunk x batch tile)
    m'  = max(m, max_k C)                          (per batch column)
    acc = acc * exp(m - m') + W^T @ exp(C - m')    (tl.dot when tiles >= 16)
    out = log(acc) + m                             (-inf when acc == 0)

`W^T[i, k] = sum_params[block_param_starts[b] + k * block_size + i]` is read
straight from the packed [K, block_size] tile of the block (proto
SumPartition). Children past `block_num_children[b]` are masked, so padding
costs nothing and never reads another block's weights.

`sum_fwd_dot_kernel` serves every block size: tl.dot needs tiles of at least
16, so blocks of 1..15 rows run in a masked 16-row tile (in fp32 "ieee"
precision, see launch.py). A broadcast-multiply-reduce fallback for small
blocks existed until Triton 3.6 on an H100 was found to sum its length-1 and
length-2 reduction axes wrongly (sum_backward._SIZE1_REDUCTION).
`sum_fwd_max_kernel` is the max-product (MPE) variant.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _gather_children(values_ptr, child_slots_ptr, row_base, offs_k, k_mask, offs_b, b_mask,
                     stride):
    """Child values [TILE_K, BLOCK_B]; masked entries are -inf (log 0)."""
    slots = tl.load(child_slots_ptr + row_base + offs_k, mask=k_mask, other=0).to(tl.int64)
    ptrs = values_ptr + slots[:, None] * stride + offs_b[None, :]
    return tl.load(ptrs, mask=k_mask[:, None] & b_mask[None, :], other=float("-inf"))


@triton.jit
def sum_fwd_dot_kernel(values_ptr, params_ptr, block_slots_ptr, block_nc_ptr, child_slots_ptr,
                       block_ps_ptr, batch, stride, max_children,
                       BS: tl.constexpr, NUM_M: tl.constexpr, TILE_M: tl.constexpr,
                       TILE_K: tl.constexpr, BLOCK_B: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0)
    blk = pid // NUM_M
    offs_m = (pid % NUM_M) * TILE_M + tl.arange(0, TILE_M)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    m_mask = offs_m < BS
    b_mask = offs_b < batch
    nc = tl.load(block_nc_ptr + blk)
    ps = tl.load(block_ps_ptr + blk).to(tl.int64)
    row_base = blk.to(tl.int64) * max_children
    acc = tl.zeros((TILE_M, BLOCK_B), dtype=tl.float32)
    run_max = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
    for k0 in range(0, nc, TILE_K):
        offs_k = k0 + tl.arange(0, TILE_K)
        k_mask = offs_k < nc
        c = _gather_children(values_ptr, child_slots_ptr, row_base, offs_k, k_mask, offs_b,
                             b_mask, stride)
        new_max = tl.maximum(run_max, tl.max(c, axis=0))
        safe = tl.where(new_max == float("-inf"), 0.0, new_max)
        e = tl.exp(c - safe[None, :])
        w = tl.load(params_ptr + ps + offs_k[None, :] * BS + offs_m[:, None],
                    mask=k_mask[None, :] & m_mask[:, None], other=0.0)
        acc = acc * tl.exp(run_max - safe)[None, :] + tl.dot(w, e, input_precision=PREC)
        run_max = new_max
    safe = tl.where(run_max == float("-inf"), 0.0, run_max)
    out = tl.log(acc) + safe[None, :]
    slot0 = tl.load(block_slots_ptr + blk).to(tl.int64)
    optrs = values_ptr + (slot0 + offs_m)[:, None] * stride + offs_b[None, :]
    tl.store(optrs, out, mask=m_mask[:, None] & b_mask[None, :])


@triton.jit
def sum_fwd_max_kernel(values_ptr, params_ptr, block_slots_ptr, block_nc_ptr, child_slots_ptr,
                       block_ps_ptr, batch, stride, max_children,
                       BS: tl.constexpr, NUM_M: tl.constexpr, TILE_M: tl.constexpr,
                       BLOCK_B: tl.constexpr):
    """Max-product: value(parent) = max_k(log w + value(child)) (MPE pass).
    One child at a time (2-D tiles only: see sum_backward._SIZE1_REDUCTION)."""
    pid = tl.program_id(0)
    blk = pid // NUM_M
    offs_m = (pid % NUM_M) * TILE_M + tl.arange(0, TILE_M)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    m_mask = offs_m < BS
    b_mask = offs_b < batch
    nc = tl.load(block_nc_ptr + blk)
    ps = tl.load(block_ps_ptr + blk).to(tl.int64)
    row_base = blk.to(tl.int64) * max_children
    best = tl.full((TILE_M, BLOCK_B), float("-inf"), dtype=tl.float32)
    for k in range(0, nc):
        slot = tl.load(child_slots_ptr + row_base + k).to(tl.int64)
        c = tl.load(values_ptr + slot * stride + offs_b, mask=b_mask, other=float("-inf"))
        w = tl.load(params_ptr + ps + k * BS + offs_m, mask=m_mask, other=0.0)
        best = tl.maximum(best, tl.log(w)[:, None] + c[None, :])
    slot0 = tl.load(block_slots_ptr + blk).to(tl.int64)
    optrs = values_ptr + (slot0 + offs_m)[:, None] * stride + offs_b[None, :]
    tl.store(optrs, best, mask=m_mask[:, None] & b_mask[None, :])
