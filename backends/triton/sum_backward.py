"""Sum-layer backward kernels: node flows of the children and parameter flows.

Node flows (linear space, proto SumBackwardPartition), per child block c:

    flow(child j) += exp(value(j)) * sum_l sum_i w(j, l, i) * flow(p_li) / exp(value(p_li))

The ratio flow/exp(value) over- or underflows in fp32 for deep circuits, so
it is formed in log space, t = log(flow_p) - value_p, and accumulated with the
same online per-column rescaling as the forward (running max m of t):

    acc = acc * exp(m - m') + W[j, i] @ exp(t - m')
    flow(child) += acc * exp(value(child) + m)

Each program owns (child block, child row tile, batch tile) and is the only
writer of its rows inside a partition, so no atomics are needed; when the
plan proved the partition is the first writer of its rows in the whole
backward (STORE), it stores without reading (and those rows need no zeroing).

Parameter flows (proto SumPartition, one program per parent block, row tile,
K-chunk and batch range; one range (the whole batch) unless the grid would
not fill the GPU, in which case the ranges add atomically):

    pflow[k, i] += w[k, i] * sum_b flow_p[i, b] * exp(x_k[b] - y_i[b])
                 = w * (A @ B)[i, k],  A[i, b] = exp(log flow_p - y_i + s_b),
                                       B[b, k] = exp(x_k - s_b)

with s_b = max_k x_k[b] over the chunk, which keeps B <= 1 and A bounded by
flow_p / w_min. Tied blocks (`has_ties`) share parameter slots and add with
atomics; untied ones read-add-write.
"""

from __future__ import annotations

# _SIZE1_REDUCTION: on an H100 with Triton 3.6, tl.sum of a 3-D broadcast
# product over a short axis ([16, 1, 64] or [16, 2, 64] summed over axis 1)
# returned several times the right value; the CPU interpreter is right.
# Found by bench/flows_bisect.py (the root's flows to its children were up to
# 5x too large) and pinned by tests/triton/test_reduction_semantics.py. So no
# kernel here reduces a 3-D product: small blocks run in masked tl.dot tiles
# of 16 (fp32 "ieee" precision for them, launch.py), like large ones.

import triton
import triton.language as tl

from pccompiler.backends.triton.dots import sum_dot

from pccompiler.backends.triton.accumulate import accumulate
from pccompiler.backends.triton.flow_writes import log_ratio_of, product_child
from pccompiler.backends.triton.fused_loads import fused_child_values
from pccompiler.backends.triton.sum_forward import group_rows, run_bounds


@triton.jit
def _log_ratio(flows_ptr, values_ptr, ptrs_off, mask, RATIO: tl.constexpr = False):
    """`log_ratio_of` the flows and values at `ptrs_off`. RATIO: the flows
    buffer already holds t at these rows (`log_ratio_kernel`)."""
    if RATIO:
        return tl.load(flows_ptr + ptrs_off, mask=mask, other=float("-inf"))
    f = tl.load(flows_ptr + ptrs_off, mask=mask, other=0.0)
    y = tl.load(values_ptr + ptrs_off, mask=mask, other=0.0)
    return log_ratio_of(f, y)


@triton.jit
def log_ratio_kernel(values_ptr, flows_ptr, block_slots_ptr, batch, stride,
                     BS: tl.constexpr, NUM_M: tl.constexpr, TILE_M: tl.constexpr,
                     BLOCK_B: tl.constexpr):
    """flows[row] <- log(flows[row]) - values[row] in place for the rows of a
    sum partition, once per layer in training: its node-flow and parameter-
    flow kernels then read one tensor and take no log (their RATIO flag)
    instead of recomputing the ratio for every child tile that reads a row."""
    pid = tl.program_id(0)
    blk = pid // NUM_M
    offs_m = (pid % NUM_M) * TILE_M + tl.arange(0, TILE_M)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask = (offs_m < BS)[:, None] & (offs_b < batch)[None, :]
    slot0 = tl.load(block_slots_ptr + blk).to(tl.int64)
    off = (slot0 + offs_m)[:, None] * stride + offs_b[None, :]
    t = _log_ratio(flows_ptr, values_ptr, off, mask)
    tl.store(flows_ptr + off, t, mask=mask)


@triton.jit
def sum_bwd_flow_kernel(values_ptr, flows_ptr, params_ptr, cblock_slots_ptr, cblock_np_ptr,
                        parent_slots_ptr, parent_ps_ptr, batch, stride, max_parents,
                        num_cblocks, CBS: tl.constexpr, PBS: tl.constexpr, NUM_J: tl.constexpr,
                        TILE_J: tl.constexpr, TILE_I: tl.constexpr, BLOCK_B: tl.constexpr,
                        STORE: tl.constexpr, PREC: tl.constexpr, RATIO: tl.constexpr = False,
                        GROUP: tl.constexpr = 1, cgrand_ptr=None, FUSED: tl.constexpr = 0,
                        cout_ptr=None, FUSED_BWD: tl.constexpr = 0,
                        ATOMIC_OUT: tl.constexpr = False, RATIO_OUT: tl.constexpr = False,
                        ratio_rows_ptr=None):
    """FUSED = A > 0: the child rows' values are read through cgrand_ptr's
    [child rows, A] grand slots (fusion.py: folded product rows, whose
    values are never written). FUSED_BWD = A_out > 0: the flows go to the
    rows of cout_ptr's [child rows, A_out] table instead: a folded product
    row's flow is not written but passed to its children as the product
    backward would (flow(child) += flow(product); STORE: this part is the first
    writer of every such row; ATOMIC_OUT: two rows of the part share a
    child; RATIO_OUT: rows flagged in ratio_rows get log(flow) - value,
    plan.mark_ratio_rows). GROUP > 1: child blocks come in aligned runs of GROUP, walked as one
    child block of GROUP * CBS rows over the union of their parent blocks
    (plan.parent_union): a parent tile is read once per run; each row keeps
    its own block's slot and parameter starts, -1 (no weights: zero) where
    its block lacks that parent."""
    pid = tl.program_id(0)
    cb = pid // NUM_J
    offs_j = (pid % NUM_J) * TILE_J + tl.arange(0, TILE_J)
    offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    j_mask = offs_j < CBS * GROUP
    if GROUP > 1:     # the last run may be short
        j_mask = j_mask & (cb * GROUP + offs_j // CBS < num_cblocks)
    b_mask = offs_b < batch
    npar = tl.load(cblock_np_ptr + cb * GROUP)
    row_base = (cb * GROUP).to(tl.int64) * max_parents
    # per row: its child block's row of parent_ps, and its row inside the block
    ps_base = (cb * GROUP + offs_j // CBS).to(tl.int64) * max_parents
    if GROUP == 1:
        w_col = offs_j * PBS
    else:
        w_col = (offs_j % CBS) * PBS
    acc = tl.zeros((TILE_J, BLOCK_B), dtype=tl.float32)
    run_max = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
    for l in range(0, npar):
        pslot = tl.load(parent_slots_ptr + row_base + l).to(tl.int64)
        if GROUP == 1:
            pstart = tl.load(parent_ps_ptr + row_base + l).to(tl.int64) + w_col
            present = j_mask
        else:     # -1: this row's block lacks the run's l-th parent (plan.parent_union)
            pstart = tl.load(parent_ps_ptr + ps_base + l, mask=j_mask, other=-1).to(tl.int64)
            present = j_mask & (pstart >= 0)
            pstart = pstart + w_col
        for i0 in range(0, PBS, TILE_I):
            offs_i = i0 + tl.arange(0, TILE_I)
            i_mask = offs_i < PBS
            off = (pslot + offs_i)[:, None] * stride + offs_b[None, :]
            t = _log_ratio(flows_ptr, values_ptr, off, i_mask[:, None] & b_mask[None, :], RATIO)
            new_max = tl.maximum(run_max, tl.max(t, axis=0))
            safe = tl.where(new_max == float("-inf"), 0.0, new_max)
            p = tl.exp(t - safe[None, :])                                          # [I, B]
            w = tl.load(params_ptr + pstart[:, None] + offs_i[None, :],
                        mask=present[:, None] & i_mask[None, :], other=0.0)       # [J, I]
            part = sum_dot(w, p, PREC)
            acc = acc * tl.exp(run_max - safe)[None, :] + part
            run_max = new_max
    safe = tl.where(run_max == float("-inf"), 0.0, run_max)
    if GROUP == 1:
        crow = tl.load(cblock_slots_ptr + cb).to(tl.int64) + offs_j
    else:
        crow = group_rows(cblock_slots_ptr, cb, offs_j, j_mask, CBS, GROUP) + offs_j % CBS
    off = crow[:, None] * stride + offs_b[None, :]
    mask = j_mask[:, None] & b_mask[None, :]
    if FUSED > 0:
        x = fused_child_values(values_ptr, cgrand_ptr, (cb * GROUP * CBS).to(tl.int64) + offs_j,
                               j_mask, offs_b, b_mask, stride, FUSED, True)
    else:
        x = tl.load(values_ptr + off, mask=mask, other=float("-inf"))
    add = tl.where(acc > 0, acc * tl.exp(x + safe[None, :]), 0.0)
    if FUSED_BWD > 0:     # (row, 1, ..) for a plain child row: the row itself
        gbase = ((cb * GROUP * CBS).to(tl.int64) + offs_j) * FUSED_BWD
        for a in tl.static_range(FUSED_BWD):
            g = tl.load(cout_ptr + gbase + a, mask=j_mask, other=1).to(tl.int64)
            product_child(flows_ptr, values_ptr, ratio_rows_ptr, g, stride, offs_b, add, mask,
                          j_mask, ATOMIC_OUT, STORE, RATIO_OUT)
    elif STORE:      # first writer of these rows in the backward (plan.py): no read
        tl.store(flows_ptr + off, add, mask=mask)
    else:
        old = tl.load(flows_ptr + off, mask=mask, other=0.0)
        tl.store(flows_ptr + off, old + add, mask=mask)


@triton.jit
def sum_param_flow_kernel(values_ptr, flows_ptr, params_ptr, pflows_ptr, block_slots_ptr,
                          block_nc_ptr, child_slots_ptr, block_ps_ptr, batch, stride,
                          max_children, batch_per_prog,
                          BS: tl.constexpr, NUM_M: tl.constexpr, NUM_KT: tl.constexpr,
                          TILE_M: tl.constexpr, TILE_K: tl.constexpr, BLOCK_B: tl.constexpr,
                          ATOMIC: tl.constexpr, PREC: tl.constexpr,
                          RATIO: tl.constexpr = False, GROUP: tl.constexpr = 1,
                          grand_ptr=None, FUSED: tl.constexpr = 0, runs_ptr=None,
                          RUNS: tl.constexpr = False, RELAXED: tl.constexpr = False):
    """GROUP > 1: the blocks come in aligned runs of GROUP with the same
    children, walked as one block of GROUP * BS rows (each row keeps its own
    block's slot and parameter start), so a child tile is read once per run.
    FUSED = A > 0: child values through grand_ptr's [nb, K, A] grand slots.
    RUNS: unequal runs (sum_forward.run_bounds). RELAXED: relaxed atomics
    (pflow="split", launch.sum_param_flows_launch)."""
    pid = tl.program_id(0)
    blk = pid // (NUM_M * NUM_KT)
    rem = pid % (NUM_M * NUM_KT)
    offs_m = (rem // NUM_KT) * TILE_M + tl.arange(0, TILE_M)
    k0 = (rem % NUM_KT) * TILE_K
    first, nrows = run_bounds(runs_ptr, blk, BS, GROUP, RUNS)
    nc = tl.load(block_nc_ptr + first)
    if (k0 < nc) & ((rem // NUM_KT) * TILE_M < nrows):
        offs_k = k0 + tl.arange(0, TILE_K)
        k_mask = offs_k < nc
        m_mask = offs_m < nrows
        cslots = tl.load(child_slots_ptr + first.to(tl.int64) * max_children + offs_k,
                         mask=k_mask, other=0).to(tl.int64)
        if GROUP == 1:
            prow = tl.load(block_slots_ptr + blk).to(tl.int64) + offs_m
            ps_rows = tl.load(block_ps_ptr + blk).to(tl.int64) + offs_m
        else:
            prow = group_rows(block_slots_ptr, first, offs_m, m_mask, BS, 1) + offs_m % BS
            ps_rows = group_rows(block_ps_ptr, first, offs_m, m_mask, BS, 1) + offs_m % BS
        acc = tl.zeros((TILE_M, TILE_K), dtype=tl.float32)
        b_first = tl.program_id(1) * batch_per_prog
        b_end = tl.minimum(b_first + batch_per_prog, batch)
        for b0 in range(b_first, b_end, BLOCK_B):
            offs_b = b0 + tl.arange(0, BLOCK_B)
            b_mask = offs_b < b_end
            if FUSED > 0:
                xt = fused_child_values(values_ptr, grand_ptr,
                                        first.to(tl.int64) * max_children + offs_k,
                                        k_mask, offs_b, b_mask, stride, FUSED, False)   # [B, K]
            else:
                xt = tl.load(values_ptr + cslots[None, :] * stride + offs_b[:, None],
                             mask=b_mask[:, None] & k_mask[None, :], other=float("-inf"))
            s = tl.max(xt, axis=1)
            s_ok = s > float("-inf")
            s_safe = tl.where(s_ok, s, 0.0)
            bt = tl.exp(xt - s_safe[:, None])
            off = prow[:, None] * stride + offs_b[None, :]
            t = _log_ratio(flows_ptr, values_ptr, off, m_mask[:, None] & b_mask[None, :], RATIO)
            a = tl.where(s_ok[None, :], tl.exp(t + s_safe[None, :]), 0.0)             # [M, B]
            acc += sum_dot(a, bt, PREC)
        pidx = ps_rows[:, None] + offs_k[None, :] * BS
        pmask = m_mask[:, None] & k_mask[None, :]
        w = tl.load(params_ptr + pidx, mask=pmask, other=0.0)
        pf = acc * w
        accumulate(pflows_ptr + pidx, pf, pmask, ATOMIC, RELAXED)
