"""Fused EM updates (backends/engine.py `Engine.em_update` semantics).

Sum nodes: for parent i of block b with children k < nc_b and flows F,
    new = (F[k, i] + pc / live_i) / (sum_k F[k, i] + pc),  w <- (1 - s) w + s new,
where live_i counts parent i's edges of non-zero weight: an edge of weight
exactly 0 (a pseudo-edge `detect-block-sparsity` padded a block with) stays 0,
so the pseudocount is spread over the node's real edges only. A node whose
denominator is 0 keeps its weights. Only one block per tie class
(the "owner", first in layout order) is updated: tied blocks share parameter
slots and their flows were already summed into those slots by the backward.

Categorical inputs: the same per parameter row (pseudocount spread over the
num_cats entries), owners only.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def sum_em_kernel(params_ptr, pflows_ptr, owner_blocks_ptr, block_nc_ptr, block_ps_ptr,
                  step, pseudocount, BS: tl.constexpr, NUM_M: tl.constexpr,
                  TILE_M: tl.constexpr, TILE_K: tl.constexpr, num_owners=0,
                  PACK: tl.constexpr = False):
    """One program per (owner block, TILE_M rows of it); PACK (one-row blocks,
    BS = 1): TILE_M owner blocks per program instead, each with its own
    fan-in and parameter start (a pruned group stored DENSE at an odd size
    has one-row blocks: one program per row was 71k programs of one row at
    HCLT-128 keep 0.1, bench/step_model.py)."""
    pid = tl.program_id(0)
    if PACK:
        offs_o = pid * TILE_M + tl.arange(0, TILE_M)
        m_mask = offs_o < num_owners
        blk = tl.load(owner_blocks_ptr + offs_o, mask=m_mask, other=0)
        nc_m = tl.load(block_nc_ptr + blk, mask=m_mask, other=0)
        ps_m = tl.load(block_ps_ptr + blk, mask=m_mask, other=0).to(tl.int64)
        nc = tl.max(nc_m)
    else:
        blk = tl.load(owner_blocks_ptr + pid // NUM_M)
        offs_m = (pid % NUM_M) * TILE_M + tl.arange(0, TILE_M)
        m_mask = offs_m < BS
        nc = tl.load(block_nc_ptr + blk)
        nc_m = tl.zeros((TILE_M,), dtype=tl.int32) + nc
        ps_m = tl.load(block_ps_ptr + blk).to(tl.int64) + offs_m
    total = tl.zeros((TILE_M,), dtype=tl.float32)
    live = tl.zeros((TILE_M,), dtype=tl.float32)
    for k0 in range(0, nc, TILE_K):
        offs_k = k0 + tl.arange(0, TILE_K)
        mask = (offs_k[:, None] < nc_m[None, :]) & m_mask[None, :]
        idx = ps_m[None, :] + offs_k[:, None] * BS
        f = tl.load(pflows_ptr + idx, mask=mask, other=0.0)
        w = tl.load(params_ptr + idx, mask=mask, other=0.0)
        total += tl.sum(f, axis=0)
        live += tl.sum((w != 0.0).to(tl.float32), axis=0)
    denom = total + pseudocount
    ok = (denom > 0) & (live > 0)
    inv = tl.where(ok, 1.0 / tl.where(ok, denom, 1.0), 0.0)
    share = pseudocount / tl.maximum(live, 1.0)
    for k0 in range(0, nc, TILE_K):
        offs_k = k0 + tl.arange(0, TILE_K)
        mask = (offs_k[:, None] < nc_m[None, :]) & m_mask[None, :]
        idx = ps_m[None, :] + offs_k[:, None] * BS
        f = tl.load(pflows_ptr + idx, mask=mask, other=0.0)
        w = tl.load(params_ptr + idx, mask=mask, other=0.0)
        new = tl.where(ok[None, :], (f + share[None, :]) * inv[None, :], w)
        new = tl.where(w != 0.0, new, 0.0)
        tl.store(params_ptr + idx, (1.0 - step) * w + step * new, mask=mask)


@triton.jit
def categorical_em_kernel(params_ptr, pflows_ptr, owner_ps_ptr, num_owners, step, pseudocount,
                          CATS: tl.constexpr, CATS_P: tl.constexpr, TILE_N: tl.constexpr):
    """Rows of CATS entries, read in chunks of CATS_P (a power of two) so a
    50k-word vocabulary does not need a 64k-wide register tile."""
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    n_mask = offs_n < num_owners
    ps = tl.load(owner_ps_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    total = tl.zeros((TILE_N,), dtype=tl.float32)
    for c0 in range(0, CATS, CATS_P):
        offs_c = c0 + tl.arange(0, CATS_P)
        mask = n_mask[:, None] & (offs_c < CATS)[None, :]
        total += tl.sum(tl.load(pflows_ptr + ps[:, None] + offs_c[None, :], mask=mask,
                                other=0.0), axis=1)
    denom = total + pseudocount
    ok = denom > 0
    inv = tl.where(ok, 1.0 / tl.where(ok, denom, 1.0), 0.0)
    for c0 in range(0, CATS, CATS_P):
        offs_c = c0 + tl.arange(0, CATS_P)
        mask = n_mask[:, None] & (offs_c < CATS)[None, :]
        idx = ps[:, None] + offs_c[None, :]
        f = tl.load(pflows_ptr + idx, mask=mask, other=0.0)
        w = tl.load(params_ptr + idx, mask=mask, other=0.0)
        new = tl.where(ok[:, None], (f + pseudocount / CATS) * inv[:, None], w)
        tl.store(params_ptr + idx, (1.0 - step) * w + step * new, mask=mask)
