"""`canonicalize`: sorted edge lists and int32 index tensors.

Later passes and the layout assume edges sorted by (parent, child) and index
tensors of the smallest integer type that holds them (halves index memory
and bandwidth). Reordering edges reorders their weights, recorded as a
parameter gather so the layout cache can replay it.
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import PassError
from pccompiler.ir import pcir
from pccompiler.passes.helpers.edit import ModelEdit, index_dtype
from pccompiler.passes.registry import register


def _narrow(edit: ModelEdit, name: str, array: np.ndarray) -> int:
    """Store `array` as int32 if it fits and is not already; 1 if changed."""
    if array.dtype == np.int32 or array.size == 0:
        return 0
    if index_dtype(int(array.max())) is np.int32 and array.min() >= 0:
        edit.set_array(name, array.astype(np.int32))
        return 1
    return 0


def edge_order(edges: np.ndarray) -> np.ndarray | None:
    """Permutation sorting edges by (parent, child); None if already sorted."""
    if len(edges) < 2:
        return None
    key_sorted = (np.diff(edges[:, 0]) > 0) | ((np.diff(edges[:, 0]) == 0)
                                              & (np.diff(edges[:, 1]) > 0))
    if key_sorted.all():
        return None
    return np.lexsort((edges[:, 1], edges[:, 0]))


@register("canonicalize", "sort sparse/block-sparse edge lists; int32 index tensors where they fit")
def canonicalize(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    edit = ModelEdit(model)
    sorted_groups = narrowed = 0
    for g in model.groups:
        if g.kind == pcir.PRODUCT:
            narrowed += _narrow(edit, g.product.child_index, edit.array(g.product.child_index))
            continue
        if g.kind != pcir.SUM or g.sum.pattern == pcir.DENSE:
            continue
        edges = np.asarray(edit.array(g.sum.edges))
        order = edge_order(edges)
        if order is not None:
            edges = edges[order]
            dup = np.flatnonzero((np.diff(edges[:, 0]) == 0) & (np.diff(edges[:, 1]) == 0))
            if len(dup):
                raise PassError(f"group {g.id} ({g.name!r}): duplicate edge "
                                f"{edges[dup[0]].tolist()} in {g.sum.edges!r}")
            edit.set_array(g.sum.edges, edges.astype(index_dtype(int(edges.max()))))
            if g.sum.weights:
                weights = edit.array(g.sum.weights)
                per_edge = int(np.prod(weights.shape[1:], dtype=np.int64))
                flat = (order[:, None] * per_edge + np.arange(per_edge)).ravel()
                edit.set_array(g.sum.weights, weights[order])
                ctx.rewrites.record(g.sum.weights, flat)
            sorted_groups += 1
        else:
            narrowed += _narrow(edit, g.sum.edges, edges)
    ctx.note(f"sorted {sorted_groups} edge lists, {narrowed} index tensors -> int32")
    return edit.build(), edit.changed
