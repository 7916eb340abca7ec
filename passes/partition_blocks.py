"""`partition-blocks`: block sizes per sum group; complete blocks become BLOCK_SPARSE.

Kernels run sums block by block (a parent block of B nodes shares its
children), so B should be as large as the sizes allow. Sparse groups whose
edges happen to tile complete aligned B x B blocks are rewritten as
BLOCK_SPARSE at the largest such B (no padding: the same edges), and
block-sparse groups with a block larger than the limit or not a power of
two are split into power-of-two blocks.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pccompiler.ir import pcir
from pccompiler.passes.helpers.blocks import blockify, block_stats, candidate_block, group_block_sizes, \
    pow2_divisor, unblockify
from pccompiler.passes.helpers.edit import ModelEdit, child_offsets
from pccompiler.passes.registry import register


def effective_limit(ctx) -> int:
    """The block limit: the backend's, lowered by partition-blocks{max_block=...}."""
    chosen = int(ctx.analysis.get("max_block", 0) or 0)
    return min(chosen, ctx.block_limit) if chosen > 0 else ctx.block_limit


def set_block_sparse(edit: ModelEdit, ctx, gid: int, block_edges: np.ndarray, block: int,
                     new_weights: np.ndarray | None, gather: np.ndarray) -> None:
    """Make group gid BLOCK_SPARSE with these edges (and weights, if it owns them)."""
    g = edit.group(gid)
    g.sum.pattern = pcir.BLOCK_SPARSE
    g.sum.block_size = int(block)
    edit.set_array(g.sum.edges, block_edges)
    edit.converted[g.sum.edges] = (pcir.BLOCK_SPARSE, int(block))
    if g.sum.weights and new_weights is not None:
        edit.set_array(g.sum.weights, new_weights.astype(edit.array(g.sum.weights).dtype))
        ctx.rewrites.record(g.sum.weights, gather)


def _complete_block(model, g, edges: np.ndarray, limit: int) -> int:
    """Largest power-of-two B >= 2 at which `edges` are complete aligned blocks (or 0)."""
    cols = int(child_offsets(model, g)[-1])
    b = candidate_block(model, g, limit)
    while b >= 2:
        blocks, n = block_stats(edges, b, cols)
        if blocks * b * b == n:
            return b
        b //= 2
    return 0


def _split_block(edit: ModelEdit, ctx, g: pcir.Group, new_block: int) -> None:
    """Rewrite a block-sparse group at a smaller block that divides its block."""
    cols = int(child_offsets(edit.model, g)[-1])
    elems = unblockify(np.asarray(edit.array(g.sum.edges)), int(g.sum.block_size))
    weights = edit.array(g.sum.weights) if g.sum.weights else None
    flat_w = None if weights is None else np.ravel(weights)
    block_edges, new_w, gather = blockify(elems, flat_w, new_block, cols)
    set_block_sparse(edit, ctx, g.id, block_edges, new_block, new_w, gather)


@register("partition-blocks", "choose a power-of-two block size per sum group (<= max_block, "
          "0 = backend limit); sparse groups made of complete blocks become block-sparse",
          defaults={"max_block": 0})
def partition_blocks(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    ctx.analysis["max_block"] = int(ctx.opt("max_block", 0))
    limit = effective_limit(ctx)
    edit = ModelEdit(model)
    converted = split = 0
    for g in model.groups:
        if g.kind != pcir.SUM or edit.follow_shared_edges(g.id):
            continue
        if g.sum.pattern == pcir.SPARSE:
            edges = np.asarray(edit.array(g.sum.edges))
            b = _complete_block(model, g, edges, limit)
            if b:
                cols = int(child_offsets(model, g)[-1])
                weights = edit.array(g.sum.weights) if g.sum.weights else None
                block_edges, new_w, gather = blockify(edges, weights, b, cols)
                set_block_sparse(edit, ctx, g.id, block_edges, b, new_w, gather)
                converted += 1
        elif g.sum.pattern == pcir.BLOCK_SPARSE:
            b = int(g.sum.block_size)
            target = pow2_divisor(b, limit)
            if target != b:
                _split_block(edit, ctx, g, target)
                split += 1
    result = edit.build()
    sizes = {g.id: group_block_sizes(result, g, limit) for g in result.groups
             if g.kind == pcir.SUM}
    hist = Counter(bp for bp, _ in sizes.values())
    ctx.note(f"limit {limit}; parent block size: " + ", ".join(f"{k} ({v} groups)" for k, v in
                                                          sorted(hist.items(), reverse=True))
             + f"; {converted} sparse -> block-sparse, {split} blocks split")
    return result, edit.changed
