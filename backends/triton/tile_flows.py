"""Node flows of row tiles read through the forward's own tiles.

A row-tiled sum partition (passes/helpers/row_tiles.py: runs of GROUP
one-row blocks with one child list, `plan.shared_run`) is a dense
[R x K] weight tile. Its node flows through the SumBackwardPartitions
walk one (child block, parent row) pair per loop trip: a 16-row masked dot
of which one row is real, a serial chain as long as the child's parent
count (bench/step_model.py: 16-20x padded MACs on CUDA cores, ~70% of a
pruned HCLT's modeled step). Here one program owns (run, K-chunk, batch
tile) and takes the transposed tile instead:

    flow(child k) += exp(value(k) + m) * sum_i W[i, k] exp(t_i - m)

with t_i = log(flow_i) - value_i of the run's parent rows and m their
per-column maximum (the rescaling of sum_backward.py), one [K x R] by
[R x batch] tensor-core dot per R-row chunk. Several runs (the tiles of
other row ranges of the group) reach the same children, so the result is
added atomically: the plan zeroes the rows that no earlier writer of the
backward wrote (`plan.mark_first_writers`).
"""

from __future__ import annotations

import triton
import triton.language as tl

from pccompiler.backends.triton.dots import sum_dot
from pccompiler.backends.triton.fused_loads import fused_child_values
from pccompiler.backends.triton.sum_backward import _log_ratio
from pccompiler.backends.triton.sum_forward import group_rows, run_bounds


@triton.jit
def sum_tile_flow_kernel(values_ptr, flows_ptr, params_ptr, block_slots_ptr, block_nc_ptr,
                         child_slots_ptr, block_ps_ptr, batch, stride, max_children,
                         BS: tl.constexpr, NUM_KT: tl.constexpr, TILE_M: tl.constexpr,
                         TILE_K: tl.constexpr, BLOCK_B: tl.constexpr, PREC: tl.constexpr,
                         RATIO: tl.constexpr = False, GROUP: tl.constexpr = 1,
                         grand_ptr=None, FUSED: tl.constexpr = 0, runs_ptr=None,
                         RUNS: tl.constexpr = False, STORE: tl.constexpr = False):
    """program_id(0): run `blk` of GROUP blocks (GROUP * BS parent rows,
    one child list) and K-chunk; program_id(1): batch tile. FUSED = A > 0:
    the children's values through grand_ptr's [nb, K, A] grand slots (the
    flows still go to the product rows: fusion.Fusion.fuse_backward).
    RUNS: unequal runs (sum_forward.run_bounds). STORE: no other program
    and no earlier writer touches these child rows (plan.mark_first_writers):
    the flows are stored, zeros included, instead of added atomically."""
    pid = tl.program_id(0)
    blk = pid // NUM_KT
    k0 = (pid % NUM_KT) * TILE_K
    first, nrows = run_bounds(runs_ptr, blk, BS, GROUP, RUNS)
    nc = tl.load(block_nc_ptr + first)
    if k0 < nc:
        offs_k = k0 + tl.arange(0, TILE_K)
        k_mask = offs_k < nc
        offs_b = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
        b_mask = offs_b < batch
        cslots = tl.load(child_slots_ptr + first.to(tl.int64) * max_children + offs_k,
                         mask=k_mask, other=0).to(tl.int64)
        acc = tl.zeros((TILE_K, BLOCK_B), dtype=tl.float32)
        run_max = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
        for m0 in range(0, nrows, TILE_M):
            offs_m = m0 + tl.arange(0, TILE_M)
            m_mask = offs_m < nrows
            prow = group_rows(block_slots_ptr, first, offs_m, m_mask, BS, 1) + offs_m % BS
            ps_rows = group_rows(block_ps_ptr, first, offs_m, m_mask, BS, 1) + offs_m % BS
            off = prow[:, None] * stride + offs_b[None, :]
            t = _log_ratio(flows_ptr, values_ptr, off, m_mask[:, None] & b_mask[None, :], RATIO)
            new_max = tl.maximum(run_max, tl.max(t, axis=0))
            safe = tl.where(new_max == float("-inf"), 0.0, new_max)
            p = tl.exp(t - safe[None, :])                                        # [M, B]
            w = tl.load(params_ptr + ps_rows[None, :] + offs_k[:, None] * BS,
                        mask=k_mask[:, None] & m_mask[None, :], other=0.0)       # [K, M]
            acc = acc * tl.exp(run_max - safe)[None, :] + sum_dot(w, p, PREC)
            run_max = new_max
        safe = tl.where(run_max == float("-inf"), 0.0, run_max)
        off = cslots[:, None] * stride + offs_b[None, :]
        mask = k_mask[:, None] & b_mask[None, :]
        if FUSED > 0:
            x = fused_child_values(values_ptr, grand_ptr,
                                   first.to(tl.int64) * max_children + offs_k, k_mask,
                                   offs_b, b_mask, stride, FUSED, True)
        else:
            x = tl.load(values_ptr + off, mask=mask, other=float("-inf"))
        add = tl.where(acc > 0, acc * tl.exp(x + safe[None, :]), 0.0)
        if STORE:
            tl.store(flows_ptr + off, add, mask=mask)
        else:
            tl.atomic_add(flows_ptr + off, add, mask=mask & (add != 0.0))
