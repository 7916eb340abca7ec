"""Node permutations inside a group, applied to the group and every reader.

Permuting the nodes of a group changes nothing about the distribution as
long as the group's own parameters/index rows and every reference to its
nodes (product index matrices, sum edge columns and weight columns) are
renumbered with it. `apply_permutation` does exactly that, vectorized;
`can_permute` says when it is safe (no ties, not a root, no block-sparse
reader whose blocks it would break).
"""

from __future__ import annotations

import numpy as np

from pccompiler.ir import pcir
from pccompiler.passes.canonicalize import edge_order
from pccompiler.passes.helpers.edit import ModelEdit, child_offsets


def can_permute(edit: ModelEdit, gid: int, readers: dict[int, list[int]], tied: set[int]) -> bool:
    g = edit.view(gid)
    if gid in tied or gid in set(edit.model.roots):
        return False
    if g.kind == pcir.SUM and g.sum.pattern == pcir.BLOCK_SPARSE:
        return False
    for r in readers[gid]:
        rg = edit.view(r)
        if r in tied:
            return False
        if rg.kind == pcir.SUM and rg.sum.pattern == pcir.BLOCK_SPARSE:
            return False
    return True


def _rows_of(weights: np.ndarray, perm: np.ndarray):
    """(permuted array, flat gather) for a row permutation of a 2-d tensor."""
    width = int(np.prod(weights.shape[1:], dtype=np.int64))
    flat = (perm[:, None].astype(np.int64) * width + np.arange(width)).ravel()
    return weights[perm], flat


def _set_sparse_edges(edit: ModelEdit, ctx, gid: int, edges: np.ndarray) -> None:
    """Store new (unsorted) sparse edges of gid, re-sorting them and its weights."""
    g = edit.view(gid)
    order = edge_order(edges)
    if order is not None:
        edges = edges[order]
        if g.sum.weights:
            w = edit.array(g.sum.weights)
            edit.set_array(g.sum.weights, w[order])
            ctx.rewrites.record(g.sum.weights, order)
    edit.set_array(g.sum.edges, edges.astype(edit.array(g.sum.edges).dtype))


def apply_permutation(edit: ModelEdit, ctx, gid: int, perm: np.ndarray,
                      readers: dict[int, list[int]]) -> None:
    """New node i of group gid is old node perm[i]; update gid and its readers."""
    perm = np.asarray(perm, dtype=np.int64)
    if np.array_equal(perm, np.arange(len(perm))):
        return
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    g = edit.view(gid)
    if g.kind == pcir.INPUT and g.input.params:
        new, flat = _rows_of(edit.array(g.input.params), perm)
        edit.set_array(g.input.params, new)
        ctx.rewrites.record(g.input.params, flat)
    elif g.kind == pcir.PRODUCT:
        edit.set_array(g.product.child_index, edit.array(g.product.child_index)[perm])
    elif g.kind == pcir.SUM and g.sum.pattern == pcir.DENSE:
        if g.sum.weights:
            new, flat = _rows_of(edit.array(g.sum.weights), perm)
            edit.set_array(g.sum.weights, new)
            ctx.rewrites.record(g.sum.weights, flat)
    elif g.kind == pcir.SUM:
        edges = np.array(edit.array(g.sum.edges), dtype=np.int64)
        edges[:, 0] = inv[edges[:, 0]]
        _set_sparse_edges(edit, ctx, gid, edges)
    for r in readers[gid]:
        rg = edit.view(r)
        if rg.kind == pcir.PRODUCT:
            index = np.array(edit.array(rg.product.child_index))
            for j, c in enumerate(rg.product.children):
                if c == gid:
                    index[:, j] = inv[index[:, j]]
            edit.set_array(rg.product.child_index, index)
            continue
        offsets = child_offsets(edit.model, rg)
        cols = int(offsets[-1])
        col_perm = np.arange(cols, dtype=np.int64)
        for j, c in enumerate(rg.sum.children):
            if c == gid:
                col_perm[offsets[j]:offsets[j + 1]] = offsets[j] + perm
        if rg.sum.pattern == pcir.DENSE:
            if rg.sum.weights:
                w = edit.array(rg.sum.weights)
                flat = (np.arange(w.shape[0], dtype=np.int64)[:, None] * cols
                        + col_perm[None, :]).ravel()
                edit.set_array(rg.sum.weights, w[:, col_perm])
                ctx.rewrites.record(rg.sum.weights, flat)
        else:
            col_inv = np.empty_like(col_perm)
            col_inv[col_perm] = np.arange(cols)
            edges = np.array(edit.array(rg.sum.edges), dtype=np.int64)
            edges[:, 1] = col_inv[edges[:, 1]]
            _set_sparse_edges(edit, ctx, r, edges)
