"""Pruning sum edges by a score (Dang, Liu & Van den Broeck, "Sparse
Probabilistic Circuits via Pruning and Growing", NeurIPS 2022).

`prune_edges(model, scores, keep)` does exactly this:

1. Rank every stored sum edge of the circuit by its score (globally, not
   per group; ties keep the lower edge index) and keep the top
   ceil(keep x E). The paper's score is the edge's circuit flow summed over
   a data set (`pccompiler.train.prune_grow.prune`).
2. Every sum node also keeps its best edge (highest score, then highest
   weight), so no sum node is left without children and no product, and
   no root, loses a child. This is the one deviation from removing exactly
   the bottom edges: it can keep up to one edge per sum node more.
3. Nodes no longer reachable from a root (no kept edge of a live parent
   reaches them) are removed, top-down; their edges go with them. Groups
   left with no node are removed and the group ids renumbered (children
   stay before parents); nodes keep their relative order.
4. The weights of each sum node are renormalised over its kept edges.

An edge of weight exactly 0 is not an edge: a group that the passes
stored dense over a pruned pattern (`detect-block-sparsity` keeps pruned
weights at 0 under EM) gives its pruned edges back as zeros in
`circuit.to_model()`. Such edges are neither ranked, nor counted in E, nor
kept; without this a second round would take `keep` of the padded dense
count (the 2026-12-07 prune-grow run kept 7.5M of 9.6M real edges at keep
0.25 and grew 30M).

Smoothness and decomposability hold by construction: product nodes are
kept or removed whole, sum nodes only lose children. A group none of whose
edges or nodes (nor its children's nodes) is removed is copied unchanged,
tensors included, so `keep=1` returns a Model equal to the input. Changed
sum groups are written SPARSE. Vectorised over edges; loops per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pccompiler import ir
from pccompiler.errors import PCError
from pccompiler.ir import pcir
from pccompiler.passes.helpers.edit import index_dtype
from pccompiler.passes.structure.graph import (child_group_of, edges_of, fresh_name,
                                               normalised_sparse, rebuild, require_groups,
                                               untie_model)


@dataclass
class PruneStats:
    sum_edges_before: int
    sum_edges_after: int
    ranked_kept: int          # ceil(keep x sum_edges_before)
    nodes_removed: int
    groups_removed: int


def _kept_edges(model, table, scores: dict[int, np.ndarray], keep: float):
    """{sum gid: (parents, cols, weights, kept mask)} after steps 1 and 2."""
    sums = [g for g in model.groups if g.kind == pcir.SUM]
    lists, flat = {}, []
    for g in sums:
        parents, cols, w = edges_of(model, g, table)
        s = np.asarray(scores[g.id], dtype=np.float64).reshape(-1)
        if s.shape != w.shape:
            raise PCError(f"prune: group {g.id}: {s.size} scores for {w.size} edges")
        s = np.where(w != 0, s, -np.inf)           # a zero weight is no edge (docstring)
        lists[g.id] = (parents, cols, w, s)
        flat.append(s)
    total = int(sum(np.count_nonzero(np.isfinite(s)) for s in flat))
    k = min(total, math.ceil(keep * total - 1e-9))
    kept_flat = np.zeros(sum(len(s) for s in flat), dtype=bool)
    if total:
        kept_flat[np.argsort(-np.concatenate(flat), kind="stable")[:k]] = True
    out, start = {}, 0
    for g in sums:
        parents, cols, w, s = lists[g.id]
        kept = kept_flat[start:start + len(s)]
        start += len(s)
        order = np.lexsort((-w, -s, parents))           # best edge of each parent first
        first = np.ones(len(order), dtype=bool)
        first[1:] = parents[order][1:] != parents[order][:-1]
        kept[order[first]] = True
        kept &= w != 0            # a node's best edge is a real one: its weights sum to 1
        out[g.id] = (parents, cols, w, kept)
    return out, total, k


def _alive(model, table, edges) -> dict[int, np.ndarray]:
    """Per group, the nodes reachable from a root through kept edges."""
    reached = {g.id: np.zeros(int(g.num_nodes), dtype=bool) for g in model.groups}
    for r in model.roots:
        reached[r][:] = True
    for g in reversed(model.groups):
        alive = reached[g.id]
        if g.kind == pcir.SUM:
            parents, cols, _, kept = edges[g.id]
            kept &= alive[parents]
            j, local = child_group_of(model, g, cols[kept])
            for pos, c in enumerate(g.sum.children):
                reached[c][local[j == pos]] = True
        elif g.kind == pcir.PRODUCT:
            index = np.asarray(table[g.product.child_index], dtype=np.int64)[alive]
            for pos, c in enumerate(g.product.children):
                reached[c][index[:, pos]] = True
    return reached


def prune_edges(model: pcir.Model, scores: dict[int, np.ndarray], keep: float
                ) -> tuple[pcir.Model, PruneStats]:
    """The pruned Model and what was removed (module docstring).

    `scores[gid]` holds one score per stored edge of sum group `gid`, in the
    shape of its weight tensor (dense [n, C], block-sparse [E, B, B],
    sparse [E]); `keep` in (0, 1] is the fraction of sum edges ranked in.
    """
    require_groups(model, "prune")
    if not 0 < keep <= 1:
        raise PCError(f"prune: keep must be in (0, 1], not {keep}")
    model = untie_model(model)
    table = ir.tensor_table(model)
    edges, total, k = _kept_edges(model, table, scores, keep)
    alive = _alive(model, table, edges)
    new_id, new_index = {}, {}
    for g in model.groups:
        if alive[g.id].any():
            new_id[g.id] = len(new_id)
            new_index[g.id] = np.cumsum(alive[g.id]) - 1
    full = {gid: bool(a.all()) for gid, a in alive.items()}
    used = {t.name for t in model.tensors}
    groups, arrays, after = [], {}, 0
    for g in model.groups:
        if g.id not in new_id:
            continue
        ng = pcir.Group()
        ng.CopyFrom(g)
        ng.id = new_id[g.id]
        ng.num_nodes = int(alive[g.id].sum())
        groups.append(ng)
        if g.kind == pcir.INPUT and not full[g.id]:
            arrays[g.input.params] = np.asarray(table[g.input.params])[alive[g.id]]
        elif g.kind == pcir.PRODUCT:
            del ng.product.children[:]
            ng.product.children.extend(new_id[c] for c in g.product.children)
            if not (full[g.id] and all(full[c] for c in g.product.children)):
                index = np.asarray(table[g.product.child_index], dtype=np.int64)[alive[g.id]]
                for pos, c in enumerate(g.product.children):
                    index[:, pos] = new_index[c][index[:, pos]]
                arrays[g.product.child_index] = index.astype(index_dtype(int(index.max(initial=0))))
        elif g.kind == pcir.SUM:
            after += _prune_sum(model, g, ng, edges[g.id], alive, full, new_id, new_index,
                                table, arrays, used)
    stats = PruneStats(total, after, k, int(sum((~a).sum() for a in alive.values())),
                       len(model.groups) - len(groups))
    return rebuild(model, groups, arrays, [new_id[r] for r in model.roots]), stats


def _prune_sum(model, g, ng, edge_list, alive, full, new_id, new_index, table, arrays,
               used) -> int:
    """Fill `ng` (a copy of sum group g) with its kept edges; returns their count."""
    parents, cols, w, kept = edge_list
    live_children = [c for c in g.sum.children if c in new_id]
    if kept.all() and full[g.id] and len(live_children) == len(g.sum.children) \
            and all(full[c] for c in g.sum.children):
        del ng.sum.children[:]
        ng.sum.children.extend(new_id[c] for c in g.sum.children)
        return len(kept)
    j, local = child_group_of(model, g, cols[kept])
    sizes = {c: int(alive[c].sum()) for c in live_children}
    offset = dict(zip(live_children, np.cumsum([0] + [sizes[c] for c in live_children])))
    new_cols = np.zeros(len(j), dtype=np.int64)
    for pos, c in enumerate(g.sum.children):
        sel = j == pos
        if sel.any():
            new_cols[sel] = offset[c] + new_index[c][local[sel]]
    new_parents = new_index[g.id][parents[kept]]
    edges, weights = normalised_sparse(new_parents, new_cols, w[kept], int(ng.num_nodes),
                                       np.asarray(table[g.sum.weights]).dtype)
    del ng.sum.children[:]
    ng.sum.children.extend(new_id[c] for c in live_children)
    ng.sum.pattern, ng.sum.block_size = pcir.SPARSE, 0
    if not g.sum.edges:
        ng.sum.edges = fresh_name(f"{g.sum.weights}.edges", used)
    arrays[ng.sum.edges] = edges
    arrays[g.sum.weights] = weights
    return len(edges)
