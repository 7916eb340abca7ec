"""Levels of a node-form circuit (pcir.NodeCircuit).

Level 0 holds the inputs; a node's level is above its deepest child's
(the longest path, or the next level of the node's kind). Three ways, all
O(edges) plus a constant per step, with no Python per node:

  * by id chunks (large circuits): node ids are topological (every child
    below its parent), so the nodes are levelled a chunk of ids at a time,
    within a chunk by scope stage (its children in earlier chunks are
    done, those in the chunk are in lower stages); a child read before it
    is levelled shows as PENDING, and then the way is dropped. One gather
    of the children's levels per edge, each chunk's edges read in
    sequence, and only a chunk sorted (small keys): no pass that checks
    the stage order first and no sort of all nodes;
  * by scope stages (smaller circuits): 2 * scope size (+1 for sums) grows
    along every edge of a smooth, decomposable circuit, so the nodes of a
    stage are levelled together from their children's levels, one gather
    and one segmented max per batch of stages; no reverse CSR, no sort of
    the edges, no per-edge scatter;
  * by Kahn's algorithm over the reversed CSR, one numpy step per level
    (any DAG): each step releases the parents whose last child was just
    levelled (the deepest child level of every parent is kept up to date
    by the same step's edges, so no step reads a released node's children
    again).

The layout pass and the reference interpreter both walk these levels.
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import CheckError
from pccompiler.ir.nodes import (CHUNK, PRODUCT, SUM, NodeArrays, chunk_bounds, concat_ranges,
                                  gather_ranges, row_chunks, sort_low_by_key, stable_argsort)


def node_levels(a: NodeArrays, alternate: bool = True) -> np.ndarray:
    """int32 [N]: the level of every node (inputs 0), the smallest above all
    its children's; with `alternate`, the smallest of the node's parity,
    products odd and sums even, so that a level holds one kind only and
    levels are layers (about 40% fewer layers on the shared SDDs than
    splitting mixed levels; no node moves more than one level).

    By id chunks (levels_by_id_chunks) for a circuit of more than one
    chunk of edges, by scope stages (levels_by_stages: fewer numpy calls
    for a small one) when the scopes order the edges, which a smooth and
    decomposable circuit's do; else by Kahn's steps."""
    level = None
    if len(a.child_ids) > CHUNK:
        level = levels_by_id_chunks(a, alternate)
    if level is None:
        level = levels_by_stages(a, alternate)
    return level if level is not None else levels_by_kahn(a, alternate)


PENDING = 1 << 30      # level of a node not yet levelled (levels_by_id_chunks)


def levels_by_id_chunks(a: NodeArrays, alternate: bool = True,
                        step: int | None = None) -> np.ndarray | None:
    """The levels of node_levels, a chunk of node ids (about `step`, CHUNK,
    edges) at a time, in id order; within a chunk, group by group of
    (scope stage, not two children), stages ascending. None when some node
    read a child not yet levelled (still PENDING): the scopes do not order
    the edges within a chunk, or ids are not topological (unchecked
    arrays). Otherwise every node was levelled from its children's final
    levels, which is the definition, so the levels are node_levels'.
    Against levels_by_stages on a 10^6-node SDD (13M nodes, 35M edges):
    each chunk's offsets and child ids read in sequence and its sort on
    uint8 ranks in cache, no stage check over all edges first (0.5 s
    against 1.0-1.3 s)."""
    if len(a.scope_lo) != a.num_nodes or len(a.scope_hi) != a.num_nodes:
        return None
    fan = a.fan_in()
    level = np.zeros(a.num_nodes, dtype=np.int32)
    level[fan > 0] = PENDING
    for r0, r1 in row_chunks(a.child_offsets[1:], step):
        key = _chunk_keys(a, fan, r0, r1)
        order, groups = _chunk_groups(key)
        for k, g0, g1 in groups:
            nodes = order[g0:g1]
            nodes += r0
            odd = (0 if k & 2 else 1) if alternate else None    # products odd, others even
            _level_group(a, level, nodes, fan, k & 1 == 0, odd)
    if a.num_nodes and int(level.max()) >= PENDING:
        return None
    return level


def _chunk_keys(a: NodeArrays, fan: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """Group key of the nodes r0..r1-1 (int32 while 4 * scope sizes fit):
    4 * scope size + 2 unless a product (one parity per group) + 1 unless
    two children (stage order, two-child rows apart); -1 for fan-in 0
    (left out)."""
    f = fan[r0:r1]
    wide = np.int32 if len(a.variable_order) < 2 ** 28 else np.int64   # 4 * scope fits
    key = np.subtract(a.scope_hi[r0:r1], a.scope_lo[r0:r1], dtype=wide)
    key *= 4
    key += 2 * (a.kind[r0:r1] != PRODUCT)
    key += f != 2
    key[f == 0] = -1
    return key


def _chunk_groups(key: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """(positions by key, stable; [(key, first, end)] of each key's run,
    ascending, key -1 left out). The keys are ranked through a table of
    the values present first, so the stable sort is numpy's radix sort of
    uint8 (uint16) ranks, not a merge sort of int32 keys (0.06 s against
    0.21 s over 13M nodes)."""
    top = int(key.max(initial=-1)) + 2
    if top <= 4 * len(key) + 4096:                    # a table of the values present
        present = np.zeros(top, dtype=bool)
        present[key] = True                           # key -1: the last entry
        rank = np.cumsum(present, dtype=np.int32)
        rank -= 1
        ranks, most = rank[key], int(rank[-1])
    else:                                             # (wide scopes: ranks by a sort)
        ranks = np.unique(key, return_inverse=True)[1].reshape(-1)
        most = int(ranks.max(initial=0))
    small = np.uint8 if most < 256 else np.uint16 if most < 2 ** 16 else np.int64
    order = np.argsort(ranks.astype(small), kind="stable")
    ordered = key[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(key)]
    runs = zip(ordered[starts].tolist(), starts.tolist(), ends.tolist())
    return order, [(k, g0, g1) for k, g0, g1 in runs if k >= 0]


def _level_group(a: NodeArrays, level: np.ndarray, nodes: np.ndarray, fan: np.ndarray,
                 pairs: bool, odd: np.ndarray | int | None) -> None:
    """Levels `nodes` from their children's current levels (`pairs`: every
    one has two children: two gathers, no segmented max)."""
    first = a.child_offsets[nodes]
    kids = a.child_ids
    if pairs:
        top = level[kids[first]]
        first += 1
        np.maximum(top, level[kids[first]], out=top)
    else:
        n_kids = fan[nodes]
        top = np.maximum.reduceat(gather_ranges(kids, first, n_kids, through=level),
                                  np.cumsum(n_kids) - n_kids)
    _set_levels(level, nodes, top, odd)


def scope_stages(a: NodeArrays) -> tuple[np.ndarray, np.ndarray] | None:
    """(stage [N], deepest child stage per stage value [max stage + 1], -1
    where no node of that stage has children): stage = 2 * scope size, + 1
    for sums; None unless every edge goes to a lower stage. In a
    decomposable circuit a product's children tile its scope, so each
    covers less of it (a product of one child, or a child of empty scope,
    breaks this); a smooth sum's children share its scope and are not sums
    (a sum of a sum breaks it)."""
    if len(a.scope_lo) != a.num_nodes or len(a.scope_hi) != a.num_nodes:
        return None
    wide = np.int32 if len(a.variable_order) < 2 ** 29 else np.int64   # int32: half the bytes
    stage = np.subtract(a.scope_hi, a.scope_lo, dtype=wide)
    stage *= 2
    stage += a.kind == SUM
    top = np.full(int(stage.max(initial=0)) + 1, -1, dtype=stage.dtype)   # ufunc.at: one dtype
    off, fan = a.child_offsets, a.fan_in()
    for r0, r1 in row_chunks(off[1:]):                  # chunks of ~CHUNK edges
        kid_stage = stage[a.child_ids[off[r0]:off[r1]]]
        parent_stage = np.repeat(stage[r0:r1], fan[r0:r1])   # edge by edge, no segmented max
        if not (kid_stage < parent_stage).all():
            return None
        np.maximum.at(top, parent_stage, kid_stage)
    return stage, top


# A batch with at least this many nodes levels its two-child nodes (most
# products of an SDD) by two gathers and one maximum instead of the
# segmented max (fewer passes over the edges; below it, fewer numpy calls).
PAIR_SPLIT = 1024


def levels_by_stages(a: NodeArrays, alternate: bool = True) -> np.ndarray | None:
    """The levels of node_levels, batch by batch of scope stages (None when
    scope_stages is None). Every child of a node is in a lower stage, so
    the nodes of one stage are levelled together from their children's
    levels (one segmented max); consecutive stages whose nodes read no
    node of the batch's own stages join one batch. Linear in the edges (one
    gather and one segmented max each), no reverse CSR and no per-edge
    scatter; a few numpy calls per batch (batches: about the levels)."""
    fan = a.fan_in()
    level = np.zeros(a.num_nodes, dtype=np.int32)
    n_inner = int(np.count_nonzero(fan))                 # fan-in 0: level 0
    if not n_inner:
        return level
    staged = scope_stages(a)
    if staged is None:
        return None
    stage, stage_top = staged
    # a batch runs on while the deepest child stage of its stages stays
    # below the batch's first stage (its nodes read no node of the batch)
    values = np.flatnonzero(stage_top >= 0).tolist()    # stages of inner nodes, ascending
    tops = stage_top[values].tolist()
    batch_of = np.zeros(len(stage_top), dtype=np.int64)
    batch, first = 0, values[0]
    for v, t in zip(values, tops):
        if t >= first:
            batch, first = batch + 1, v
        batch_of[v] = batch
    # nodes by (batch, not two children): each batch's two-child nodes
    # first, fan-in 0 nodes last (key 2 * batch + 2, left out); keys made in
    # chunks, one stable sort of all nodes
    last = 2 * batch + 2
    key = np.empty(a.num_nodes, dtype=np.uint16 if last < 2 ** 16 else np.int64)
    for c0, c1 in chunk_bounds(a.num_nodes):
        f = fan[c0:c1]
        k = batch_of[stage[c0:c1]]
        k *= 2
        k += f != 2
        k[f == 0] = last
        key[c0:c1] = k
    nodes = stable_argsort(key)[:n_inner]
    bounds = np.r_[0, np.cumsum(np.bincount(key, minlength=last + 1))][:last + 1]
    del key
    size = np.diff(bounds[0::2])                          # nodes per batch
    # the children of the small batches' nodes, gathered once for all of
    # them, and what each of their nodes needs besides its children's
    # levels, made once (a small batch costs its numpy calls, not its
    # arrays: five each)
    small = np.flatnonzero(size < PAIR_SPLIT)
    in_small = nodes[concat_ranges(bounds[2 * small], size[small])]
    count = fan[in_small]
    ends = np.r_[0, np.cumsum(count)]                   # edge offsets, small batches' nodes
    kid_ids = a.child_ids[concat_ranges(a.child_offsets[in_small], count)]
    q_end = np.cumsum(size[small])
    q_start = q_end - size[small]
    seg = ends[:-1] - np.repeat(ends[q_start], size[small])   # segment starts within the batch
    # level = ((top + 1 + even) | 1) - even: the smallest above top of the
    # node's parity (even = 1 for sums, 0 for products; 0 with no parity)
    even = (a.kind[in_small] != PRODUCT).astype(np.int32) if alternate else \
        np.zeros(len(in_small), dtype=np.int32)
    step = even + 1
    spans = dict(zip(small.tolist(), zip(q_start.tolist(), q_end.tolist(),
                                         ends[q_start].tolist(), ends[q_end].tolist())))
    bounds, big = bounds.tolist(), (size >= PAIR_SPLIT).tolist()
    odd = (a.kind == PRODUCT).view(np.uint8) if alternate else None
    for b in range(batch + 1):
        if not big[b]:                       # a small batch: the gathered children
            q0, q1, e0, e1 = spans[b]
            top = np.maximum.reduceat(level[kid_ids[e0:e1]], seg[q0:q1])
            top += step[q0:q1]
            if alternate:
                top |= 1
                top -= even[q0:q1]
            level[in_small[q0:q1]] = top
            continue
        j = 2 * b                            # bounds[j:j + 3]: pairs, others, end
        for i0, i1, pairs in ((j, j + 1, True), (j + 1, j + 2, False)):
            p0, p1 = bounds[i0], bounds[i1]
            for c0, c1 in chunk_bounds(p1 - p0):     # a large batch, in chunks of nodes
                _level_group(a, level, nodes[p0 + c0:p0 + c1], fan, pairs, odd)
    return level


def _set_levels(level: np.ndarray, part: np.ndarray, top: np.ndarray,
                odd: np.ndarray | int | None) -> None:
    """level[part] = top + 1, raised to the node's parity (products odd)
    where `odd` is given: per node (an array over all nodes), or one
    parity for all of `part` (an int: ((top + 2 - odd) | 1) - (1 - odd),
    no gather of the nodes' parities)."""
    if isinstance(odd, int):
        top += 2 - odd
        top |= 1
        top -= 1 - odd
    else:
        top += 1
        if odd is not None:
            top += (top ^ odd[part]) & 1
    level[part] = top


def levels_by_kahn(a: NodeArrays, alternate: bool = True) -> np.ndarray:
    """node_levels by Kahn's steps (any DAG; see the module docstring)."""
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
