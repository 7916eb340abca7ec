"""Levels of a node-form circuit (pcir.NodeCircuit).

Level 0 holds the inputs; a node's level is above its deepest child's
(the longest path, or the next level of the node's kind). Kahn's algorithm over the reversed CSR, one numpy step per level:
each step releases the parents whose last child was just levelled (the
deepest child level of every parent is kept up to date by the same step's
edges, so no step reads a released node's children again), so the whole
computation is O(edges) plus a constant per level, with no Python
per node. The layout pass and the reference interpreter both walk these
levels.
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import CheckError
from pccompiler.ir.nodes import (PRODUCT, NodeArrays, concat_ranges, sort_low_by_key,
                                  stable_argsort)


def node_levels(a: NodeArrays, alternate: bool = True) -> np.ndarray:
    """int32 [N]: the level of every node (inputs 0), the smallest above all
    its children's; with `alternate`, the smallest of the node's parity,
    products odd and sums even, so that a level holds one kind only and
    levels are layers (about 40% fewer layers on the shared SDDs than
    splitting mixed levels; no node moves more than one level)."""
    n = a.num_nodes
    fan = a.fan_in()
    kids = a.child_ids
    parent_of = parents_by_child(kids, fan, n)
    rstart = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(kids, minlength=n), out=rstart[1:])
    rcount = np.diff(rstart)
    odd = (a.kind == PRODUCT).astype(np.int32)
    remaining = fan.copy()
    level = np.full(n, -1, dtype=np.int32)
    deepest = np.full(n, -1, dtype=np.int32)    # the highest level among a node's levelled children
    frontier = np.flatnonzero(fan == 0)
    level[frontier] = 0
    ready = np.zeros(n, dtype=bool)           # dedupe scratch: the parents just released
    while len(frontier):                     # ~20 numpy calls a step (87 steps on seq_fun)
        count = rcount[frontier]
        ends = np.cumsum(count)
        edges = np.repeat(rstart[frontier] - (ends - count), count)
        edges += np.arange(int(ends[-1]))
        par = parent_of[edges]
        np.maximum.at(deepest, par, np.repeat(level[frontier], count))
        np.subtract.at(remaining, par, 1)
        ready[par[remaining[par] == 0]] = True   # a parent appears once per levelled child
        frontier = np.flatnonzero(ready)         # so: once each, in id order
        ready[frontier] = False
        top = deepest[frontier] + 1
        if alternate:                        # products odd, sums even: at most one up
            top += (top ^ odd[frontier]) & 1
        level[frontier] = top
    if (level < 0).any():
        raise CheckError("topological-order", f"node {int(np.argmax(level < 0))} is on a cycle "
                                              "or below one (run ir.check first)")
    return level


def parents_by_child(kids: np.ndarray, fan: np.ndarray, n: int) -> np.ndarray:
    """intp [E]: the parent of every edge, edges ordered by child (ties by
    parent id, which is edge order: the edges are grouped by parent in id
    order), i.e. `np.repeat(arange(n), fan)[stable_argsort(kids)]`. The
    parent ids are sorted by child directly (ir.nodes.sort_low_by_key), so
    there is no gather through the permutation (one random read per edge:
    ~10 ms of a 1.5M-edge circuit)."""
    parent = np.repeat(np.arange(n, dtype=np.intp), fan)
    packed = sort_low_by_key(kids, parent, n - 1)
    if packed is None:
        return parent[stable_argsort(kids)]
    return packed.view(np.intp) if np.dtype(np.intp) == np.int64 else packed.astype(np.intp)


def edges_of(a: NodeArrays, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge positions, segment starts) of `nodes`' children, node by node."""
    off = a.child_offsets
    fan = off[nodes + 1] - off[nodes]
    return concat_ranges(off[nodes], fan), np.cumsum(fan) - fan
