"""Runs of consecutive sum blocks that read the same children.

A sum partition lists its blocks one by one; where aligned runs of blocks
have identical child lists (a dense layer declared as 32-row blocks, or the
row tiles of a pruned group: passes/helpers/row_tiles.py), an engine can
read the children once per run and multiply them by all the run's rows.
The triton plan walks such runs as program groups (plan.shared_run); the
torch engine's layout index merges them into wider blocks
(layout_index.merge_runs). Both find them here.
"""

from __future__ import annotations

import numpy as np


def equal_runs(lists: np.ndarray, counts: np.ndarray, block_size: int, max_rows: int) -> int:
    """The largest power-of-two G such that every aligned run of G
    consecutive blocks has the same children (`lists` rows, padded, and
    `counts`) and G * block_size <= max_rows; 1 if none."""
    nb = lists.shape[0]
    g = 1
    while (2 * g) * block_size <= max_rows and nb % (2 * g) == 0:
        c = lists.reshape(nb // (2 * g), 2 * g, -1)
        n = counts.reshape(nb // (2 * g), 2 * g)
        if not ((c == c[:, :1]).all() and (n == n[:, :1]).all()):
            break
        g *= 2
    return g


def variable_runs(lists: np.ndarray, counts: np.ndarray, block_size: int,
                  max_rows: int) -> np.ndarray:
    """Start offsets (int64 [runs + 1], the last = number of blocks) of the
    maximal runs of consecutive blocks with the same children, each cut to
    at most max_rows // block_size blocks (at least 1).

    Unlike `equal_runs` the runs need not be aligned or of one length: a
    sum group of 126 one-row blocks over one child list (a pruned HCLT's
    group stored DENSE, whose odd size has no power-of-two block) is one
    run of 126 rows, where `equal_runs` finds none (G = 1)."""
    nb = lists.shape[0]
    if nb == 0:
        return np.zeros(1, dtype=np.int64)
    same = np.ones(nb, dtype=bool)
    same[0] = False
    if nb > 1:
        same[1:] = (lists[1:] == lists[:-1]).all(axis=1) & (counts[1:] == counts[:-1])
    heads = np.flatnonzero(~same)
    lengths = np.diff(np.append(heads, nb))
    cap = max(1, max_rows // max(block_size, 1))
    pieces = -(-lengths // cap)                       # runs past the cap split into pieces
    first = np.repeat(heads, pieces) + cap * (
        np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    return np.append(first, nb).astype(np.int64)
