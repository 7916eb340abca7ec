"""Node flows and parameter flows of a sum layer from one tile of parent ratios.

The layer's two backward products are one pair of GEMMs over the same
operands (bench/results/pflow-cpu-2026-12-07.md counts what the separate
kernels cost):

    node flow   flow(k, b)  = exp(x_k[b]) * sum_i w[k, i] exp(t_i[b])
    param flow  pflow(k, i) = w[k, i] * sum_b exp(t_i[b]) exp(x_k[b])

with t_i = log(flow_i) - value_i of the parent rows and x_k the child
values. With c_b = max_i t_i[b] over a parent tile, A = exp(t - c) <= 1 and
E = exp(x + c) (the factor the node-flow kernel already applies to its
accumulator: bounded by flow_i / w[k, i]):

    flow(k, b)  += E[k, b] * (W @ A)[k, b]          [J x I] @ [I x B]
    P[k, i]     += (E @ A^T)[k, i]                  [J x B] @ [B x I]
    pflow(k, i) += w[k, i] * P[k, i]

so A and E are computed once per (parent tile, batch tile) and feed both
dots: no exp of a child per parent row tile and no exp of a parent per
child chunk, as the separate parameter-flow kernel pays, and no second pass
over the parent ratios and child values.

One program owns (child block, child row tile, batch range) of a plain
SumBackwardPartition (GROUP 1, no folded products): it walks the parents
(outer) and the batch tiles of its range (inner), so W is loaded once per
parent tile and P sums over the range in registers; P goes to the parameter
flows with one atomic add per (program, parent tile) -- a launch that splits
the batch into R ranges adds R times per weight, and tied blocks share
slots. The node flow of each parent tile is added to the child rows in
linear space (each term is a flow, so no running rescale is needed): the
program is the only writer of its rows in the launch; with STORE (the plan
proved it the first writer in the backward) the first parent tile stores.
"""

from __future__ import annotations

import triton
import triton.language as tl

from pccompiler.backends.triton.dots import sum_dot
from pccompiler.backends.triton.sum_backward import _log_ratio


@triton.jit
def sum_bwd_pflow_kernel(values_ptr, flows_ptr, params_ptr, pflows_ptr, cblock_slots_ptr,
                         cblock_np_ptr, parent_slots_ptr, parent_ps_ptr, batch, stride,
                         max_parents, batch_per_prog,
                         CBS: tl.constexpr, PBS: tl.constexpr, NUM_J: tl.constexpr,
                         TILE_J: tl.constexpr, TILE_I: tl.constexpr, BLOCK_B: tl.constexpr,
                         STORE: tl.constexpr, PREC: tl.constexpr, RATIO: tl.constexpr = False):
    """program_id(0): child block and row tile; program_id(1): the batch
    range [r * batch_per_prog, ...). RATIO: the parent rows of `flows`
    already hold log(flow) - value (sum_backward.log_ratio_kernel)."""
    pid = tl.program_id(0)
    cb = pid // NUM_J
    offs_j = (pid % NUM_J) * TILE_J + tl.arange(0, TILE_J)
    j_mask = offs_j < CBS
    npar = tl.load(cblock_np_ptr + cb)
    row_base = cb.to(tl.int64) * max_parents
    crow = tl.load(cblock_slots_ptr + cb).to(tl.int64) + offs_j
    b_first = tl.program_id(1) * batch_per_prog
    b_end = tl.minimum(b_first + batch_per_prog, batch)
    for l in range(0, npar):
        pslot = tl.load(parent_slots_ptr + row_base + l).to(tl.int64)
        wrow = tl.load(parent_ps_ptr + row_base + l).to(tl.int64) + offs_j * PBS     # [J]
        for i0 in range(0, PBS, TILE_I):
            offs_i = i0 + tl.arange(0, TILE_I)
            i_mask = offs_i < PBS
            wmask = j_mask[:, None] & i_mask[None, :]
            widx = wrow[:, None] + offs_i[None, :]
            w = tl.load(params_ptr + widx, mask=wmask, other=0.0)                     # [J, I]
            pacc = tl.zeros((TILE_J, TILE_I), dtype=tl.float32)
            for b0 in range(b_first, b_end, BLOCK_B):
                offs_b = b0 + tl.arange(0, BLOCK_B)
                b_mask = offs_b < b_end
                t = _log_ratio(flows_ptr, values_ptr, (pslot + offs_i)[:, None] * stride
                               + offs_b[None, :], i_mask[:, None] & b_mask[None, :], RATIO)
                c = tl.max(t, axis=0)
                c_ok = c > float("-inf")
                c_safe = tl.where(c_ok, c, 0.0)
                a = tl.exp(t - c_safe[None, :])                                       # [I, B]
                coff = crow[:, None] * stride + offs_b[None, :]
                cmask = j_mask[:, None] & b_mask[None, :]
                x = tl.load(values_ptr + coff, mask=cmask, other=float("-inf"))
                e = tl.where(c_ok[None, :], tl.exp(x + c_safe[None, :]), 0.0)         # [J, B]
                wa = sum_dot(w, a, PREC)                                              # [J, B]
                add = tl.where(wa > 0, wa * e, 0.0)
                if STORE:      # the first parent tile is the rows' first write
                    old = tl.load(flows_ptr + coff, mask=cmask & (l + i0 > 0), other=0.0)
                else:
                    old = tl.load(flows_ptr + coff, mask=cmask, other=0.0)
                tl.store(flows_ptr + coff, old + add, mask=cmask)
                pacc += sum_dot(e, tl.trans(a), PREC)                                 # [J, I]
            tl.atomic_add(pflows_ptr + widx, pacc * w, mask=wmask & (w != 0.0), sem="relaxed")
    if STORE:
        if npar == 0:     # no parent in this part: the rows' flow is 0, stored once
            for b0 in range(b_first, b_end, BLOCK_B):
                offs_b = b0 + tl.arange(0, BLOCK_B)
                cmask = j_mask[:, None] & (offs_b < b_end)[None, :]
                tl.store(flows_ptr + crow[:, None] * stride + offs_b[None, :],
                         tl.zeros((TILE_J, BLOCK_B), dtype=tl.float32), mask=cmask)
