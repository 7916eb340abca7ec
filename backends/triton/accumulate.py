"""`accumulate`: add a tile into a flow buffer, atomically or not.

Every backward kernel ends by adding what its program computed into a
buffer of flows (node flows, parameter flows, input statistics). When the
engine proved that no other program of the launch writes the same entries
(`ATOMIC` off), a plain load-add-store is exact and cheaper than atomics;
otherwise the add must be atomic. This is the one place that choice is
written; Triton inlines it, so the kernels compile to the same code.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def accumulate(ptr, value, mask, ATOMIC: tl.constexpr, RELAXED: tl.constexpr = False):
    """ptr[...] += value where mask (atomically when ATOMIC). RELAXED: the
    atomics without ordering (Triton's default is acq_rel); a sum over
    programs needs none, the kernel's end publishes it."""
    if ATOMIC and RELAXED:
        tl.atomic_add(ptr, value, mask=mask, sem="relaxed")
    elif ATOMIC:
        tl.atomic_add(ptr, value, mask=mask)
    else:
        tl.store(ptr, tl.load(ptr, mask=mask, other=0.0) + value, mask=mask)
