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

# Writers of at most this many rows in all take the rule in whole-array steps
# (`_first_writer_stores_whole`): the walk's three numpy calls per writer
# were most of a 2k-node logic circuit's store flags. Larger plans walk
# (np.minimum.at over 10^7 rows costs more than the walk's slices).
WHOLE_ROWS_MAX = 1 << 18



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
    if forget_before is None and fresh is None and \
            sum(len(rows) for layer in writers for rows, _ in layer) <= WHOLE_ROWS_MAX:
        return _first_writer_stores_whole(writers, num_slots, written_first)
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


def _first_writer_stores_whole(writers: list[LayerWriters], num_slots: int,
                               written_first: tuple[int, ...]) -> list[list[bool]]:
    """first_writer_stores without `forget_before` and `fresh`: a writer
    stores when it may and every row it lists has it as its first writer
    in the walk's order (the rows of `written_first` have an earlier one);
    a writer of no rows stores when it may."""
    walk = [(li, i) for li in reversed(range(len(writers))) for i in range(len(writers[li]))]
    flags: list[list[bool]] = [[False] * len(layer) for layer in writers]
    if not walk:
        return flags
    rows = [writers[li][i][0] for li, i in walk]
    sizes = np.array([len(r) for r in rows], dtype=np.int64)
    every = np.concatenate(rows).astype(np.int64, copy=False)
    order = np.repeat(np.arange(len(walk), dtype=np.int64), sizes)
    late = late_rows(every, order, len(walk), num_slots, written_first)
    for w, (li, i) in enumerate(walk):
        flags[li][i] = bool(writers[li][i][1]) and not late[w]
    return flags


def late_rows(rows: np.ndarray, writer: np.ndarray, count: int, num_slots: int,
              written_first: tuple[int, ...]) -> np.ndarray:
    """Per writer 0..count-1 (numbered in walk order), how many of its rows
    (rows[k] is written by writer[k]) have an earlier first writer: a
    writer with none stores. Rows of `written_first` are written before
    the walk. The whole-array form of the walk's rule (np.minimum.at of
    the writer numbers per row)."""
    first = np.full(num_slots, count, dtype=np.int64)
    first[list(written_first)] = -1
    np.minimum.at(first, rows, writer)
    return np.bincount(writer[first[rows] != writer], minlength=count)   # ints, no weights


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
