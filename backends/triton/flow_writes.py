"""Where a backward kernel's flow for a row goes: stored, added (atomically
where rows repeat), or turned into training's log ratio.

Shared by the product backward (io_kernels) and, in fused plans
(fusion.py), by the sum node-flow kernels that pass a folded product's
flow straight to its children.
"""

from __future__ import annotations

import triton
import triton.language as tl

from pccompiler.backends.triton.accumulate import accumulate


@triton.jit
def log_ratio_of(f, y):
    """t = log(f) - y for flows f and log-values y; -inf where the flow is 0
    or the value is -inf. The one formula of training's log ratios (here and
    in the product backward that writes them, io_kernels)."""
    ok = (f > 0) & (y > float("-inf"))
    return tl.where(ok, tl.log(tl.where(ok, f, 1.0)) - y, float("-inf"))


@triton.jit
def _pass_flow(flows_ptr, coff, f, cmask, ATOMIC: tl.constexpr, STORE: tl.constexpr):
    if STORE:      # first writer of every child row (plan.py): no read, no zeroing
        tl.store(flows_ptr + coff, f, mask=cmask)
    else:
        accumulate(flows_ptr + coff, f, cmask, ATOMIC)


@triton.jit
def _store_flow_or_ratio(flows_ptr, values_ptr, ratio_rows_ptr, cs, coff, f, cmask, n_mask):
    """The only writer of a child row stores its flow, or, where
    ratio_rows[slot] is set (a sum row nobody else writes: plan.py
    `mark_ratio_rows`), log(flow) - value: what `log_ratio_kernel` would
    make of it, without that kernel's extra pass over the rows."""
    flag = tl.load(ratio_rows_ptr + cs, mask=n_mask, other=0) != 0
    rmask = cmask & flag[:, None]
    y = tl.load(values_ptr + coff, mask=rmask, other=0.0)
    t = log_ratio_of(f, y)
    tl.store(flows_ptr + coff, tl.where(flag[:, None], t, f), mask=cmask)


@triton.jit
def product_child(flows_ptr, values_ptr, ratio_rows_ptr, cs, stride, offs_b, f, mask, n_mask,
                  ATOMIC: tl.constexpr, STORE: tl.constexpr, RATIO_OUT: tl.constexpr):
    """Flow f [N, B] into rows cs [N] (one child of each of N products):
    stored, added, or its log ratio (RATIO_OUT, rows flagged in
    ratio_rows); slot 1 (padding) is skipped."""
    coff = cs[:, None] * stride + offs_b[None, :]
    cmask = mask & (cs != 1)[:, None]          # slot 1 pads products
    if RATIO_OUT:
        _store_flow_or_ratio(flows_ptr, values_ptr, ratio_rows_ptr, cs, coff, f, cmask, n_mask)
    else:
        _pass_flow(flows_ptr, coff, f, cmask, ATOMIC, STORE)
