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
