"""A float64 view of a `pcir.Model` for the reference interpreter.

Decodes every group once into plain numpy: input parameters (following
ties), product index matrices, and sum edges as one edge list per group,
sorted by parent, whatever the stored pattern. The interpreter is simple on
purpose (it is the oracle the fast backends are compared with), so all
three edge patterns become the same (parent, child column, log weight) list
and one segment log-sum-exp serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pccompiler import ir
from pccompiler.errors import BackendError

pcir = ir.pcir


@dataclass
class SumEdges:
    """Edges of one sum group, sorted by (parent, child column); zero-weight
    edges dropped. Segment s holds the edges of parent `seg_parents[s]`,
    starting at edge `seg_starts[s]`."""
    parents: np.ndarray      # int64 [E]
    cols: np.ndarray         # int64 [E] child column
    log_weights: np.ndarray  # float64 [E]
    seg_starts: np.ndarray   # int64 [S]
    seg_parents: np.ndarray  # int64 [S]
    seg_of_edge: np.ndarray  # int64 [E]
    col_offsets: np.ndarray  # int64 [num children + 1]: first column of each child group


@dataclass
class GroupView:
    id: int
    kind: int
    num_nodes: int
    children: list[int] = field(default_factory=list)
    var: int = -1
    dist: int = 0
    params: np.ndarray | None = None   # float64 [N, P]
    index: np.ndarray | None = None    # int64 [N, k]
    edges: SumEdges | None = None


def sum_edge_list(group: pcir.Group, table: ir.TensorTable, weights: np.ndarray,
                   child_sizes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(parents, cols, weights) of every stored edge, in any order."""
    n = group.num_nodes
    num_cols = sum(child_sizes)
    pattern = group.sum.pattern
    if pattern == pcir.DENSE:
        parents = np.repeat(np.arange(n, dtype=np.int64), num_cols)
        cols = np.tile(np.arange(num_cols, dtype=np.int64), n)
        return parents, cols, weights.reshape(-1)
    edges = np.asarray(table[group.sum.edges], dtype=np.int64)
    if pattern == pcir.SPARSE:
        return edges[:, 0], edges[:, 1], weights.reshape(-1)
    if pattern == pcir.BLOCK_SPARSE:
        b = group.sum.block_size
        offs = np.arange(b, dtype=np.int64)
        parents = edges[:, 0, None, None] * b + offs[None, :, None]
        cols = edges[:, 1, None, None] * b + offs[None, None, :]
        shape = (len(edges), b, b)
        return (np.broadcast_to(parents, shape).reshape(-1),
                np.broadcast_to(cols, shape).reshape(-1), weights.reshape(-1))
    raise BackendError(f"reference: group {group.id} has unknown edge pattern {pattern}")


def _sum_edges(group: pcir.Group, table: ir.TensorTable, weights: np.ndarray,
               child_sizes: list[int]) -> SumEdges:
    parents, cols, w = sum_edge_list(group, table, weights, child_sizes)
    keep = w > 0
    parents, cols, w = parents[keep], cols[keep], w[keep]
    order = np.lexsort((cols, parents))
    parents, cols, w = parents[order], cols[order], w[order]
    first = np.ones(len(parents), dtype=bool)
    first[1:] = parents[1:] != parents[:-1]
    seg_starts = np.flatnonzero(first)
    return SumEdges(parents=parents, cols=cols, log_weights=np.log(w),
                    seg_starts=seg_starts, seg_parents=parents[seg_starts],
                    seg_of_edge=np.cumsum(first) - 1,
                    col_offsets=np.concatenate([[0], np.cumsum(child_sizes)]).astype(np.int64))


class ModelView:
    """Decoded groups of a Model, in the Model's (topological) order."""

    def __init__(self, model: pcir.Model):
        if not model.roots:
            raise BackendError("reference: the model has no root")
        self.model = model
        self.num_vars = len(model.variables)
        self.var_kinds = np.array([v.kind for v in model.variables], dtype=np.int64)
        self.var_cats = np.array([v.num_cats for v in model.variables], dtype=np.int64)
        self.root = int(model.roots[0])
        table = ir.tensor_table(model)
        owner = ir.tie_targets(model)
        self.groups: list[GroupView] = []
        for g in model.groups:
            src = model.groups[owner.get(g.id, g.id)]
            view = GroupView(id=g.id, kind=g.kind, num_nodes=int(g.num_nodes))
            if g.kind == pcir.INPUT:
                view.var, view.dist = int(g.input.variable), int(g.input.dist)
                params = np.asarray(table[src.input.params], dtype=np.float64)
                view.params = params.reshape(g.num_nodes, -1)
            elif g.kind == pcir.PRODUCT:
                view.children = list(g.product.children)
                view.index = np.asarray(table[g.product.child_index], dtype=np.int64)
            elif g.kind == pcir.SUM:
                view.children = list(g.sum.children)
                sizes = [int(model.groups[c].num_nodes) for c in view.children]
                weights = np.asarray(table[src.sum.weights], dtype=np.float64)
                view.edges = _sum_edges(g, table, weights, sizes)
            else:
                raise BackendError(f"reference: group {g.id} has unknown kind {g.kind}")
            self.groups.append(view)

    @property
    def has_real(self) -> bool:
        return bool(np.any(self.var_kinds == pcir.REAL))
