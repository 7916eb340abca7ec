"""The one load of fused children (fusion.py): a child that is a folded
product row is read as the sum of its A grandchildren's log-values.

Every kernel that reads a sum's child values (forward dot, node flows,
parameter flows, row-tile flows) calls `fused_child_values` in place of its
plain gather when the plan gave its part a grand-slot table (`FUSED` = A).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def fused_child_values(values_ptr, grand_ptr, idx, k_mask, offs_b, b_mask, stride,
                       A: tl.constexpr, K_FIRST: tl.constexpr):
    """Child values, [K, B] (K_FIRST) or [B, K]: for entry idx[k] of the
    [*, A] grand table, sum_a values[grand[idx[k], a]], added in the order
    product_fwd_kernel adds a product's children (0 + c0 + c1 + ...: the
    same fp32 value). Slot 1 (log 1, padding) is not loaded; masked entries
    are -inf (log 0), as the plain gathers make them."""
    gbase = idx.to(tl.int64) * A
    g = tl.load(grand_ptr + gbase, mask=k_mask, other=1).to(tl.int64)
    if K_FIRST:
        mask = k_mask[:, None] & b_mask[None, :]
        acc = tl.load(values_ptr + g[:, None] * stride + offs_b[None, :],
                      mask=mask & (g != 1)[:, None], other=0.0)
    else:
        mask = b_mask[:, None] & k_mask[None, :]
        acc = tl.load(values_ptr + g[None, :] * stride + offs_b[:, None],
                      mask=mask & (g != 1)[None, :], other=0.0)
    for a in tl.static_range(1, A):
        g = tl.load(grand_ptr + gbase + a, mask=k_mask, other=1).to(tl.int64)
        if K_FIRST:
            acc += tl.load(values_ptr + g[:, None] * stride + offs_b[None, :],
                           mask=mask & (g != 1)[:, None], other=0.0)
        else:
            acc += tl.load(values_ptr + g[None, :] * stride + offs_b[:, None],
                           mask=mask & (g != 1)[None, :], other=0.0)
    return tl.where(mask, acc, float("-inf"))
