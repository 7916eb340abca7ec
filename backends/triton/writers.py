"""The first-writer rule of the backward, shared by the plan and the
compact-plan analysis.

Node flows are written layer by layer in reverse; within a layer the sum
backward partitions come first, then the products. A writer may *store*
(write without reading, so its rows need no zeroing) when none of its rows
was written before it. `plan.mark_first_writers` applies the rule to a
built plan; `scratch.compact_remap` applies it to a Layout before any plan
exists, to know which rows a storing writer fills first.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# One layer's writers in backward order: (rows written, allowed to store).
LayerWriters = list[tuple[np.ndarray, bool]]


def first_writer_stores(writers: list[LayerWriters], num_slots: int,
                        written_first: tuple[int, ...] = (),
                        forget_before: Callable[[int], slice | None] | None = None,
                        fresh: list[list[np.ndarray]] | None = None) -> list[list[bool]]:
    """Store flags, one per writer, walking `writers` (indexed by layer) in
    reverse layer order. `written_first`: rows written before the walk (the
    root); `forget_before(li)`: rows whose earlier writes no longer count
    when layer li starts (a reused scratch region), or None. `fresh`, if
    given, receives per layer and writer the rows no earlier writer wrote
    (those an adding writer must find zeroed; a row the writer lists twice
    comes twice: the caller takes the union of the writers it needs)."""
    written = np.zeros(num_slots, dtype=bool)
    written[list(written_first)] = True
    flags: list[list[bool]] = [[] for _ in writers]
    new: list[list[np.ndarray]] = [[] for _ in writers]
    for li in reversed(range(len(writers))):
        forget = forget_before(li) if forget_before is not None else None
        if forget is not None:
            written[forget] = False
        for rows, may_store in writers[li]:
            flags[li].append(bool(may_store) and not written[rows].any())
            if fresh is not None:
                new[li].append(rows[~written[rows]])
            written[rows] = True
    if fresh is not None:
        fresh[:] = new
    return flags


def block_rows(starts: np.ndarray, size: int) -> np.ndarray:
    """The rows of blocks of `size` rows starting at `starts`, flattened."""
    if size == 1:                   # one-row blocks (logic circuits): the starts themselves
        return np.array(starts, dtype=np.int64).reshape(-1)
    starts = np.asarray(starts, dtype=np.int64)
    return (starts[:, None] + np.arange(size)[None, :]).reshape(-1)


def child_rows(child_slots: np.ndarray, dtype=np.int64) -> np.ndarray:
    """The real children of [n, K] child slots (slot 0, the sums' padding,
    and slot 1, the products', carry no flow), as `dtype` (None: the slots'
    own, for rows that only index: no int64 copy of 10^7 int32 slots)."""
    cs = np.asarray(child_slots, dtype=dtype).reshape(-1)
    return cs[cs > 1]
