"""Input-layer and product-layer kernels (forward and backward).

Inputs (proto InputPartition): node n of a partition is slot slot_start + n,
a distribution over variable node_vars[n] with parameters at
input_params[node_param_starts[n] ...]. The data is passed transposed,
x_t [num_vars, B] (and missing_t, uint8), so that a node's batch row is one
coalesced load. Forward writes log-densities (missing -> 0, or the mode's
log-density in the max-product pass). Backward reduces the node's flows over
the whole batch inside one program (a loop over batch tiles) and adds the
sufficient statistics of backends/engine.py; only the categorical scatter
`input_param_flows[r + x] += f` needs atomics per element. The DIST
constexpr is plan.DIST_CODES' code: 0 categorical, 1 Bernoulli, 2 Gaussian.

Products (proto ProductPartition): value = sum of child values (log space);
backward passes the parent flow to every child. A child may have several
product parents inside one partition (PD regions), so the backward uses
atomics unless the engine proved the partition's children unique.
"""

from __future__ import annotations

import triton
import triton.language as tl

from pccompiler.backends.triton.accumulate import accumulate
from pccompiler.backends.triton.flow_writes import product_child as _product_child


@triton.jit
def categorical_log_prob(params_ptr, x_ptr, bad_ptr, ps, var, xoff, obs, offs_b, cats):
    """log p_n[x] of the observed entries `obs` (x at x_ptr + xoff); a
    category outside [0, cats) reads nothing and lowers bad_ptr[0] to
    row * 2^31 + var (row-major: the first bad entry)."""
    xv = tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.int64)
    ok = obs & (xv >= 0) & (xv < cats)
    out = tl.log(tl.load(params_ptr + ps[:, None] + xv, mask=ok, other=1.0))
    key = offs_b.to(tl.int64)[None, :] * 2147483648 + var[:, None]
    tl.atomic_min(bad_ptr + tl.zeros_like(key), key, mask=obs & ~ok)
    return out

@triton.jit
def bernoulli_log_prob(x_ptr, xoff, obs, p):
    """log p or log(1 - p) of the observed entries `obs`, by x > 0.5."""
    xv = tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.float32)
    return tl.where(xv > 0.5, tl.log(p)[:, None], tl.log(1.0 - p)[:, None])


@triton.jit
def gaussian_log_prob(x_ptr, xoff, obs, mean, std):
    """log N(x; mean, std) of the observed entries `obs` (0.918... = log sqrt(2 pi))."""
    xv = tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.float32)
    z = (xv - mean[:, None]) / std[:, None]
    return -0.5 * z * z - tl.log(std)[:, None] - 0.9189385332046727


@triton.jit
def input_fwd_kernel(values_ptr, params_ptr, x_ptr, miss_ptr, node_vars_ptr, node_ps_ptr,
                     bad_ptr, slot_start, num_nodes, batch, stride, batch_per_prog,
                     DIST: tl.constexpr, CATS: tl.constexpr, CATS_P: tl.constexpr,
                     HAS_MISSING: tl.constexpr, MODE_MAX: tl.constexpr, TILE_N: tl.constexpr,
                     BLOCK_B: tl.constexpr):
    """One program: TILE_N nodes over `batch_per_prog` samples (a loop over
    batch tiles), so a node's parameter row (1 KB for 256 categories) stays
    in L1 while every sample gathers from it, instead of being fetched once
    per batch tile. Categories outside [0, CATS) read nothing; the smallest
    key row * 2^31 + var of such an observed entry goes to bad_ptr[0]
    (atomic min: the first bad row, then column), which the engine reports after the pass
    (`TritonEngine.take_bad_entry`): the batch check costs no extra pass."""
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    n_mask = offs_n < num_nodes
    var = tl.load(node_vars_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    ps = tl.load(node_ps_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    srow = (slot_start + offs_n).to(tl.int64) * stride
    if DIST == 1:
        p = tl.load(params_ptr + ps, mask=n_mask, other=0.5)
    if DIST == 2:
        mean = tl.load(params_ptr + ps, mask=n_mask, other=0.0)
        std = tl.load(params_ptr + ps + 1, mask=n_mask, other=1.0)
    if HAS_MISSING:
        if MODE_MAX:
            if DIST == 0:      # the row's largest probability, in chunks of CATS_P
                top = tl.zeros((TILE_N,), dtype=tl.float32)
                for c0 in range(0, CATS, CATS_P):
                    offs_c = c0 + tl.arange(0, CATS_P)
                    row = tl.load(params_ptr + ps[:, None] + offs_c[None, :],
                                  mask=n_mask[:, None] & (offs_c[None, :] < CATS), other=0.0)
                    top = tl.maximum(top, tl.max(row, axis=1))
                best = tl.log(top)
            elif DIST == 1:
                best = tl.log(tl.maximum(p, 1.0 - p))
            else:
                best = -tl.log(std) - 0.9189385332046727
    b_first = tl.program_id(1) * batch_per_prog
    b_end = tl.minimum(b_first + batch_per_prog, batch)
    for b0 in range(b_first, b_end, BLOCK_B):
        offs_b = b0 + tl.arange(0, BLOCK_B)
        mask = n_mask[:, None] & (offs_b < b_end)[None, :]
        xoff = var[:, None] * stride + offs_b[None, :]
        obs = mask          # entries whose x is read (a missing entry's x may be garbage)
        if HAS_MISSING:
            miss = tl.load(miss_ptr + xoff, mask=mask, other=0) != 0
            obs = mask & (miss == 0)
        if DIST == 0:
            out = categorical_log_prob(params_ptr, x_ptr, bad_ptr, ps, var, xoff, obs, offs_b,
                                       CATS)
        elif DIST == 1:
            out = bernoulli_log_prob(x_ptr, xoff, obs, p)
        else:
            out = gaussian_log_prob(x_ptr, xoff, obs, mean, std)
        if HAS_MISSING:
            if MODE_MAX:
                out = tl.where(miss, best[:, None], out)
            else:
                out = tl.where(miss, 0.0, out)
        tl.store(values_ptr + srow[:, None] + offs_b[None, :], out, mask=mask)


@triton.jit
def input_bwd_kernel(flows_ptr, params_ptr, pflows_ptr, nflows_ptr, x_ptr, miss_ptr,
                     node_vars_ptr, node_ps_ptr, slot_start, num_nodes, batch, stride,
                     DIST: tl.constexpr, CATS: tl.constexpr, CATS_P: tl.constexpr,
                     HAS_MISSING: tl.constexpr, ATOMIC: tl.constexpr, SCATTER: tl.constexpr,
                     TILE_N: tl.constexpr, BLOCK_B: tl.constexpr, NODE_FLOWS: tl.constexpr = True):
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    n_mask = offs_n < num_nodes
    var = tl.load(node_vars_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    ps = tl.load(node_ps_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
    srow = (slot_start + offs_n).to(tl.int64) * stride
    tot = tl.zeros((TILE_N,), dtype=tl.float32)    # sum_b f
    s1 = tl.zeros((TILE_N,), dtype=tl.float32)     # sum_b f * x  (Bernoulli, Gaussian)
    s2 = tl.zeros((TILE_N,), dtype=tl.float32)     # sum_b f * x^2 (Gaussian)
    fm = tl.zeros((TILE_N,), dtype=tl.float32)     # sum_b f over missing entries
    for b0 in range(0, batch, BLOCK_B):
        offs_b = b0 + tl.arange(0, BLOCK_B)
        mask = n_mask[:, None] & (offs_b < batch)[None, :]
        f = tl.load(flows_ptr + srow[:, None] + offs_b[None, :], mask=mask, other=0.0)
        xoff = var[:, None] * stride + offs_b[None, :]
        obs = mask
        if HAS_MISSING:
            miss = tl.load(miss_ptr + xoff, mask=mask, other=0) != 0
            fm += tl.sum(tl.where(miss, f, 0.0), axis=1)
            obs = mask & (miss == 0)
        tot += tl.sum(f, axis=1)
        if DIST == 0:
            if SCATTER:    # else categorical_flow_dot_kernel does the observed part
                xv = tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.int64)
                tl.atomic_add(pflows_ptr + ps[:, None] + xv, f, mask=obs & (f != 0))
        else:
            xv = tl.where(obs, tl.load(x_ptr + xoff, mask=obs, other=0).to(tl.float32), 0.0)
            fo = tl.where(obs, f, 0.0)
            s1 += tl.sum(fo * xv, axis=1)
            s2 += tl.sum(fo * xv * xv, axis=1)
    if NODE_FLOWS:     # off for categoricals: their total is the row sum of pflows
        accumulate(nflows_ptr + ps, tot, n_mask, ATOMIC)
    if DIST == 0:
        if HAS_MISSING:        # expected counts f * p(c), in chunks of CATS_P categories
            for c0 in range(0, CATS, CATS_P):
                offs_c = c0 + tl.arange(0, CATS_P)
                cmask = n_mask[:, None] & (offs_c[None, :] < CATS) & (fm[:, None] != 0)
                row = tl.load(params_ptr + ps[:, None] + offs_c[None, :], mask=cmask, other=0.0)
                tl.atomic_add(pflows_ptr + ps[:, None] + offs_c[None, :], fm[:, None] * row,
                              mask=cmask)
    else:
        p0 = tl.load(params_ptr + ps, mask=n_mask, other=0.0)
        if DIST == 1:
            s1 += fm * p0
        else:
            sd = tl.load(params_ptr + ps + 1, mask=n_mask, other=0.0)
            s1 += fm * p0
            s2 += fm * (p0 * p0 + sd * sd)
        accumulate(pflows_ptr + ps, s1, n_mask, ATOMIC)
        if DIST == 2:
            accumulate(pflows_ptr + ps + 1, s2, n_mask, ATOMIC)


@triton.jit
def categorical_flow_dot_kernel(flows_ptr, pflows_ptr, x_ptr, miss_ptr, node_ps_ptr,
                                tile_start_ptr, tile_count_ptr, tile_var_ptr, slot_start, batch,
                                stride, CATS: tl.constexpr, HAS_MISSING: tl.constexpr,
                                ATOMIC: tl.constexpr, TILE_N: tl.constexpr, TILE_C: tl.constexpr,
                                BLOCK_B: tl.constexpr, PREC: tl.constexpr):
    """Observed categorical statistics without per-element atomics: for a
    tile of nodes over one variable v, pflow[n, c] += sum_b f[n, b] [x_vb == c]
    is the product F[TILE_N, B] @ onehot[B, TILE_C] on tensor cores (the
    one-hot is exact in tf32; missing entries have an all-zero row)."""
    t = tl.program_id(0)
    offs_c = tl.program_id(1) * TILE_C + tl.arange(0, TILE_C)
    start = tl.load(tile_start_ptr + t)
    cnt = tl.load(tile_count_ptr + t)
    var = tl.load(tile_var_ptr + t).to(tl.int64)
    lane = tl.arange(0, TILE_N)
    n_mask = lane < cnt
    offs_n = (start + lane).to(tl.int64)
    srow = (slot_start + offs_n) * stride
    acc = tl.zeros((TILE_N, TILE_C), dtype=tl.float32)
    for b0 in range(0, batch, BLOCK_B):
        offs_b = b0 + tl.arange(0, BLOCK_B)
        b_mask = offs_b < batch
        f = tl.load(flows_ptr + srow[:, None] + offs_b[None, :],
                    mask=n_mask[:, None] & b_mask[None, :], other=0.0)
        xv = tl.load(x_ptr + var * stride + offs_b, mask=b_mask, other=-1).to(tl.int32)
        if HAS_MISSING:
            miss = tl.load(miss_ptr + var * stride + offs_b, mask=b_mask, other=0)
            xv = tl.where(miss != 0, -1, xv)
        onehot = (xv[:, None] == offs_c[None, :]).to(tl.float32)
        acc += tl.dot(f, onehot, input_precision=PREC)
    ps = tl.load(node_ps_ptr + offs_n, mask=n_mask, other=0)
    idx = ps[:, None] + offs_c[None, :]
    mask = n_mask[:, None] & (offs_c < CATS)[None, :]
    accumulate(pflows_ptr + idx, acc, mask, ATOMIC)


@triton.jit
def product_fwd_kernel(values_ptr, child_slots_ptr, slot_start, num_nodes, num_children,
                       batch, stride, TILE_N: tl.constexpr, BLOCK_B: tl.constexpr,
                       UNROLL: tl.constexpr):
    """UNROLL = num_children (<= MAX_UNROLL) unrolls the child loop so that
    its independent gathers are in flight together (a small product layer is
    latency bound); 0 keeps a runtime loop."""
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    n_mask = offs_n < num_nodes
    mask = n_mask[:, None] & (offs_b < batch)[None, :]
    acc = tl.zeros((TILE_N, BLOCK_B), dtype=tl.float32)
    row = offs_n.to(tl.int64) * num_children
    if UNROLL > 0:
        for k in tl.static_range(UNROLL):
            cs = tl.load(child_slots_ptr + row + k, mask=n_mask, other=1).to(tl.int64)
            acc += tl.load(values_ptr + cs[:, None] * stride + offs_b[None, :], mask=mask,
                           other=0.0)
    else:
        for k in range(0, num_children):
            cs = tl.load(child_slots_ptr + row + k, mask=n_mask, other=1).to(tl.int64)
            acc += tl.load(values_ptr + cs[:, None] * stride + offs_b[None, :], mask=mask,
                           other=0.0)
    off = (slot_start + offs_n).to(tl.int64)[:, None] * stride + offs_b[None, :]
    tl.store(values_ptr + off, acc, mask=mask)


@triton.jit
def product_bwd_kernel(flows_ptr, child_slots_ptr, slot_start, num_nodes, num_children,
                       batch, stride, values_ptr, ratio_rows_ptr, ATOMIC: tl.constexpr,
                       STORE: tl.constexpr, TILE_N: tl.constexpr, BLOCK_B: tl.constexpr,
                       UNROLL: tl.constexpr, RATIO_OUT: tl.constexpr = False):
    """flow(child) += flow(product) for every child. RATIO_OUT (training, a
    storing partition): rows flagged in ratio_rows get log(flow) - value
    instead (`_store_flow_or_ratio`); values_ptr and ratio_rows_ptr are
    not read otherwise."""
    offs_n = tl.program_id(0) * TILE_N + tl.arange(0, TILE_N)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    n_mask = offs_n < num_nodes
    mask = n_mask[:, None] & (offs_b < batch)[None, :]
    off = (slot_start + offs_n).to(tl.int64)[:, None] * stride + offs_b[None, :]
    f = tl.load(flows_ptr + off, mask=mask, other=0.0)
    row = offs_n.to(tl.int64) * num_children
    if UNROLL > 0:
        for k in tl.static_range(UNROLL):
            cs = tl.load(child_slots_ptr + row + k, mask=n_mask, other=1).to(tl.int64)
            _product_child(flows_ptr, values_ptr, ratio_rows_ptr, cs, stride, offs_b, f, mask,
                           n_mask, ATOMIC, STORE, RATIO_OUT)
    else:
        for k in range(0, num_children):
            cs = tl.load(child_slots_ptr + row + k, mask=n_mask, other=1).to(tl.int64)
            _product_child(flows_ptr, values_ptr, ratio_rows_ptr, cs, stride, offs_b, f, mask,
                           n_mask, ATOMIC, STORE, RATIO_OUT)
