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

from pccompiler.backends.triton.dots import sum_dot
from pccompiler.backends.triton.fused_loads import fused_child_values


@triton.jit
def _gather_children(values_ptr, child_slots_ptr, row_base, offs_k, k_mask, offs_b, b_mask,
                     stride, grand_ptr, FUSED: tl.constexpr):
    """Child values [TILE_K, BLOCK_B]; masked entries are -inf (log 0).
    FUSED = A > 0: the children are read through the part's grand slots
    (fusion.py), entry row_base + k of the [*, A] table."""
    if FUSED > 0:
        return fused_child_values(values_ptr, grand_ptr, row_base + offs_k, k_mask, offs_b,
                                  b_mask, stride, FUSED, True)
    slots = tl.load(child_slots_ptr + row_base + offs_k, mask=k_mask, other=0).to(tl.int64)
    ptrs = values_ptr + slots[:, None] * stride + offs_b[None, :]
    return tl.load(ptrs, mask=k_mask[:, None] & b_mask[None, :], other=float("-inf"))


@triton.jit
def group_rows(ptr, blk, offs, mask, BS: tl.constexpr, GROUP: tl.constexpr):
    """Per row of program group `blk` (GROUP aligned blocks of BS rows that
    share their partners: plan.shared_run / plan.parent_union), its own
    block's entry of the per-block int array at `ptr` (int64). Used by the
    forward and both backward kernels."""
    return tl.load(ptr + blk * GROUP + offs // BS, mask=mask, other=0).to(tl.int64)


@triton.jit
def run_bounds(runs_ptr, blk, BS: tl.constexpr, GROUP: tl.constexpr, RUNS: tl.constexpr):
    """(first block, rows) of program group `blk`: aligned runs of GROUP
    blocks, or with RUNS the unequal runs of plan.run_table (int32 starts,
    one past the last)."""
    if RUNS:
        first = tl.load(runs_ptr + blk)
        rows = (tl.load(runs_ptr + blk + 1) - first) * BS
    else:
        first = blk * GROUP
        rows = BS * GROUP
    return first, rows


@triton.jit
def sum_fwd_dot_kernel(values_ptr, params_ptr, block_slots_ptr, block_nc_ptr, child_slots_ptr,
                       block_ps_ptr, batch, stride, max_children, split_ptr, k_per_split,
                       BS: tl.constexpr, NUM_M: tl.constexpr, TILE_M: tl.constexpr,
                       TILE_K: tl.constexpr, BLOCK_B: tl.constexpr, PREC: tl.constexpr,
                       SPLIT_K: tl.constexpr = False, GROUP: tl.constexpr = 1,
                       grand_ptr=None, FUSED: tl.constexpr = 0, runs_ptr=None,
                       RUNS: tl.constexpr = False):
    """SPLIT_K: program_id(2) takes children [s * k_per_split, ...) and writes
    its partial log-sum to split_ptr[s, block * BS + row, b] for
    `sum_split_combine_kernel` (a few huge-fan-in rows, e.g. a root over
    8,192 children, would otherwise run on a handful of SMs).
    GROUP > 1: program_id(0) walks groups of GROUP consecutive blocks with
    the same children (plan.shared_run) as one block of GROUP * BS rows;
    each row reads its own block's parameter start and output slot.
    FUSED = A > 0: children through grand_ptr's [nb, K, A] slots (fusion.py).
    RUNS: program groups are plan.run_table's unequal runs (`run_bounds`;
    GROUP bounds their length), not SPLIT_K."""
    pid = tl.program_id(0)
    blk = pid // NUM_M
    offs_m = (pid % NUM_M) * TILE_M + tl.arange(0, TILE_M)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    first, nrows = run_bounds(runs_ptr, blk, BS, GROUP, RUNS)
    m_mask = offs_m < nrows
    b_mask = offs_b < batch
    nc = tl.load(block_nc_ptr + first)
    if GROUP == 1:
        w_rows = tl.load(block_ps_ptr + blk).to(tl.int64) + offs_m
    else:
        w_rows = group_rows(block_ps_ptr, first, offs_m, m_mask, BS, 1) + offs_m % BS
    row_base = first.to(tl.int64) * max_children
    acc = tl.zeros((TILE_M, BLOCK_B), dtype=tl.float32)
    run_max = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
    k_lo = 0
    k_hi = nc
    if RUNS:    # a row tile past this run's rows: no work, nothing stored
        k_hi = tl.where((pid % NUM_M) * TILE_M < nrows, nc, 0)
    if SPLIT_K:
        k_lo = tl.program_id(2) * k_per_split
        k_hi = tl.minimum(k_lo + k_per_split, nc)
    for k0 in range(k_lo, k_hi, TILE_K):
        offs_k = k0 + tl.arange(0, TILE_K)
        k_mask = offs_k < k_hi
        c = _gather_children(values_ptr, child_slots_ptr, row_base, offs_k, k_mask, offs_b,
                             b_mask, stride, grand_ptr, FUSED)
        new_max = tl.maximum(run_max, tl.max(c, axis=0))
        safe = tl.where(new_max == float("-inf"), 0.0, new_max)
        e = tl.exp(c - safe[None, :])
        w = tl.load(params_ptr + w_rows[:, None] + offs_k[None, :] * BS,
                    mask=k_mask[None, :] & m_mask[:, None], other=0.0)
        acc = acc * tl.exp(run_max - safe)[None, :] + sum_dot(w, e, PREC)
        run_max = new_max
    safe = tl.where(run_max == float("-inf"), 0.0, run_max)
    out = tl.log(acc) + safe[None, :]
    mask = m_mask[:, None] & b_mask[None, :]
    if SPLIT_K:
        rows = tl.num_programs(0) // NUM_M * BS * GROUP
        prow = (tl.program_id(2) * rows + blk * BS * GROUP + offs_m).to(tl.int64)
        tl.store(split_ptr + prow[:, None] * batch + offs_b[None, :], out, mask=mask)
    else:
        if GROUP == 1:
            out_rows = tl.load(block_slots_ptr + blk).to(tl.int64) + offs_m
        else:
            out_rows = group_rows(block_slots_ptr, first, offs_m, m_mask, BS, 1) + offs_m % BS
        optrs = values_ptr + out_rows[:, None] * stride + offs_b[None, :]
        tl.store(optrs, out, mask=mask)


@triton.jit
def sum_split_combine_kernel(values_ptr, split_ptr, block_slots_ptr, num_rows, num_splits,
                             batch, stride, BS: tl.constexpr, TILE_R: tl.constexpr,
                             BLOCK_B: tl.constexpr):
    """values[row] = logsumexp over s of split[s, row] (rows = block * BS + m)."""
    offs_r = tl.program_id(0) * TILE_R + tl.arange(0, TILE_R)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask = (offs_r < num_rows)[:, None] & (offs_b < batch)[None, :]
    run_max = tl.full((TILE_R, BLOCK_B), float("-inf"), dtype=tl.float32)
    acc = tl.zeros((TILE_R, BLOCK_B), dtype=tl.float32)
    for s in range(0, num_splits):
        v = tl.load(split_ptr + (s * num_rows + offs_r).to(tl.int64)[:, None] * batch
                    + offs_b[None, :], mask=mask, other=float("-inf"))
        new_max = tl.maximum(run_max, v)
        safe = tl.where(new_max == float("-inf"), 0.0, new_max)
        acc = acc * tl.exp(run_max - safe) + tl.exp(v - safe)
        run_max = new_max
    safe = tl.where(run_max == float("-inf"), 0.0, run_max)
    slot = tl.load(block_slots_ptr + offs_r // BS, mask=offs_r < num_rows, other=0).to(tl.int64)
    optrs = values_ptr + (slot + offs_r % BS)[:, None] * stride + offs_b[None, :]
    tl.store(optrs, tl.log(acc) + safe, mask=mask)


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
