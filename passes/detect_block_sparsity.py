"""`detect-block-sparsity`: classify sum groups and pad sparse ones into blocks.

For each sum group the pass measures, at the largest usable block size B,
the fraction of B x B blocks present and the fraction of edges present
inside those blocks, and classifies it:
  dense         every block present (block-sparse groups with all blocks
                are rewritten as DENSE, up to `dense_max_params` weights:
                a bigger one stays BLOCK_SPARSE, which lays out the same
                parent blocks over the same children, because the rewrite
                costs seconds and a cached gather of one int per weight);
  block-sparse  complete or nearly complete blocks: sparse groups are
                rewritten as BLOCK_SPARSE with zero-weight pseudo-edges,
                while padding <= tol * real edges;
  sparse        otherwise (kept as an edge list).
Before giving up on a sparse group it tries node permutations found by
co-clustering (passes/helpers/coclustering.py) of the group's own nodes and of its
child groups, applied consistently to every reader (passes/helpers/permute.py), and
keeps them only if they reduce the padding; it skips that search where the
rows' and columns' edge counts alone prove that no permutation reaches the
tolerance (blocks.padding_floor).

A sparse group (pruned without structure) may instead get row tiles
(passes/helpers/row_tiles.py, `tiles=true`): rows reordered by a min-hash
signature, cut into aligned tiles of R rows over the union of their
children, pseudo-edges of weight 0 where an edge is missing; or be stored
DENSE (`tile_dense=true`), zero weights for its missing edges. One function,
`_choose_storage`, decides: it prices the block-sparse form found above (if
any), the row tiles (R, bc), the one-row form and the DENSE store in the
row-tile cost model's reads, so that small blocks (2, 4, 8 rows) that pass
the padding tolerance but cost more than the dense group are stored dense.
Tiles are recorded in Model.metadata["row_tiles"] for layerize (kernel
"row_tiles").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pccompiler.ir import pcir
from pccompiler.ir.checker import is_logic
from pccompiler.passes.helpers.blocks import (blockify, block_stats, candidate_block, child_gcd,
                                              dense_block_sizes, padding_floor)
from pccompiler.passes.helpers.coclustering import co_cluster
from pccompiler.passes.helpers.edit import ModelEdit, child_offsets, readers
from pccompiler.passes.helpers.rewrites import apply_gather
from pccompiler.passes.partition_blocks import effective_limit, set_block_sparse
from pccompiler.passes.helpers.permute import apply_permutation, can_permute
from pccompiler.passes.helpers.row_tiles import (ROW_TILES_KEY, block_sparse_cost, choose_tiles,
                                                 dense_cost, encode, tile_edges, tile_grid)
from pccompiler.passes.registry import register
from pccompiler.passes.tie_params import tie_classes


def _to_dense(edit: ModelEdit, ctx, g: pcir.Group, cols: int) -> None:
    """A block-sparse group with every block present becomes DENSE."""
    b = int(g.sum.block_size)
    n = int(g.num_nodes)
    edges = np.asarray(edit.array(g.sum.edges), dtype=np.int64)
    if n % b == 0 and cols % b == 0:
        # Every (parent block, child block) pair once: sorting the blocks
        # makes dense = blocks[order] as [pb, cb, i, j] -> [pb, i, cb, j], a
        # transpose instead of a scatter through a per-weight int64 index.
        nbp, nbc = n // b, cols // b
        order = np.argsort(edges[:, 0] * nbc + edges[:, 1], kind="stable")
        idx_t = np.int32 if len(edges) * b * b < 2 ** 31 else np.int64
        elem = np.arange(b * b, dtype=idx_t).reshape(b, b)
        gather = (order.astype(idx_t)[:, None, None] * (b * b) + elem[None]).reshape(
            nbp, nbc, b, b).transpose(0, 2, 1, 3).ravel()
    else:
        i = np.arange(b)
        # dense position (pb*b+i, cb*b+j) <- block element (e, i, j)
        rows = edges[:, 0][:, None, None] * b + i[None, :, None]
        colz = edges[:, 1][:, None, None] * b + i[None, None, :]
        dense_pos = (rows * cols + colz).ravel()
        gather = np.empty(n * cols, dtype=np.int64)
        gather[dense_pos] = np.arange(len(dense_pos))
    _set_dense(edit, ctx, g, gather, cols)


def _set_dense(edit: ModelEdit, ctx, g: pcir.Group, gather: np.ndarray, cols: int) -> None:
    """Group g becomes DENSE, its [n x cols] weights gathered from the old
    ones (-1: a new zero), the gather recorded for layout-cache hits."""
    group = edit.group(g.id)
    group.sum.pattern = pcir.DENSE
    group.sum.block_size = 0
    edit.remove(group.sum.edges)
    edit.converted[group.sum.edges] = (pcir.DENSE, 0)
    group.sum.edges = ""
    if group.sum.weights:
        w = edit.array(group.sum.weights)
        if (gather >= 0).all():
            edit.set_array(group.sum.weights, np.ravel(w)[gather].reshape(int(g.num_nodes), cols))
        else:
            edit.set_array(group.sum.weights, apply_gather(w, gather, (int(g.num_nodes), cols)))
        ctx.rewrites.record(group.sum.weights, gather)


def _padding(edges: np.ndarray, block: int, cols: int) -> tuple[int, float]:
    blocks, n = block_stats(edges, block, cols)
    return blocks, (blocks * block * block - n) / max(n, 1)


def _find_permutation(edit, g, block, cols, rd, tied):
    """Co-cluster g's rows and its children's nodes at `block`.

    Returns (padding after, apply, edges after) where apply() renumbers the
    nodes of g and of its movable child groups (and every reader), or None
    when nothing may move.
    """
    edges = np.asarray(edit.array(g.sum.edges), dtype=np.int64)
    offsets = child_offsets(edit.model, g)
    children = list(g.sum.children)
    segments = np.repeat(np.arange(len(children)), np.diff(offsets))
    movable = np.zeros(cols, dtype=bool)
    for j, c in enumerate(children):
        movable[offsets[j]:offsets[j + 1]] = children.count(c) == 1 and can_permute(
            edit, c, rd, tied)
    row_ok = can_permute(edit, g.id, rd, tied)
    if not row_ok and not movable.any():
        return None
    row_perm, col_perm, blocks = co_cluster(edges, int(g.num_nodes), segments, block,
                                            row_ok, movable)

    def apply(ctx):
        for j, c in enumerate(children):
            if movable[offsets[j]]:
                apply_permutation(edit, ctx, c, col_perm[offsets[j]:offsets[j + 1]] - offsets[j],
                                  rd)
        if row_ok:
            apply_permutation(edit, ctx, g.id, row_perm, rd)
    inv_r, inv_c = np.arange(int(g.num_nodes)), np.arange(cols)
    if row_ok:
        inv_r[row_perm] = np.arange(len(row_perm))
    moved = np.where(movable, col_perm, inv_c)
    inv_c[moved] = np.arange(cols)
    after = np.stack([inv_r[edges[:, 0]], inv_c[edges[:, 1]]], axis=1)
    return (blocks * block * block - len(edges)) / max(len(edges), 1), apply, after


@register("detect-block-sparsity", "classify sum groups dense / block-sparse / sparse; pad "
          "near-complete blocks with zero-weight pseudo-edges while padding <= tol; "
          "permute=true also searches node permutations that recover blocks; tiles=true "
          "runs the groups left sparse as row tiles where the cost model says so",
          defaults={"tol": 0.5, "permute": True, "dense_max_params": 1 << 24, "tiles": True,
                    "tile_rows": "1/16/32/64/128", "tile_dense": True, "tile_cols": "1/2/4/8/16/32/64/128",
                    "macs_per_read": 64.0})
def detect_block_sparsity(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    limit = effective_limit(ctx)
    tol = float(ctx.opt("tol", 0.5))
    edit = ModelEdit(model)
    rd = readers(model)
    tied = {m for members in tie_classes(model).values() if len(members) > 1 for m in members}
    stats: dict[int, dict] = {}
    counts = {"dense": 0, "block-sparse": 0, "sparse": 0, "row-tiles": 0}
    tiles: dict[int, tuple[int, int]] = {}
    # logic circuits keep their edge lists: a counting semiring counts an
    # edge whatever its weight, so a zero-weight pseudo-edge would count
    use_tiles = bool(ctx.opt("tiles", True)) and not is_logic(model)
    for gid in range(len(model.groups)):
        g = edit.view(gid)
        if g.kind != pcir.SUM:
            continue
        cols = int(child_offsets(model, g)[-1])
        if edit.follow_shared_edges(gid):
            g = edit.view(gid)
            stats[gid] = {"class": "dense" if g.sum.pattern == pcir.DENSE else "block-sparse",
                          "note": f"shares the edges of an earlier tied group"}
        elif g.sum.pattern == pcir.DENSE:
            stats[gid] = {"class": "dense", "block_fraction": 1.0, "fill": 1.0}
        elif g.sum.pattern == pcir.BLOCK_SPARSE:
            b = int(g.sum.block_size)
            present = len(edit.array(g.sum.edges))
            frac = present / ((int(g.num_nodes) // b) * (cols // b))
            total = (int(g.num_nodes) // b) * (cols // b)
            to_dense = frac == 1 and present * b * b <= int(ctx.opt("dense_max_params", 1 << 24))
            stats[gid] = {"class": "dense" if to_dense else "block-sparse",
                          "block_size": b, "block_fraction": frac, "fill": 1.0,
                          "note": f"block-sparse at {b}: {present}/{total} blocks "
                                  f"({frac:.1%})" + (" -> dense" if to_dense else
                                                     " (complete, too big to rewrite)"
                                                     if frac == 1 else "")}
            if to_dense:
                _to_dense(edit, ctx, g, cols)
        else:
            found = _block_candidate(edit, ctx, g, cols, limit, tol, rd, tied)
            stats[gid], tiled = _choose_storage(edit, ctx, edit.view(gid), rd, tied, limit,
                                                found, use_tiles and gid not in tied)
            if tiled is not None:
                tiles[gid] = tiled
        counts[stats[gid]["class"]] += 1
    ctx.note(", ".join(f"{v} {k}" for k, v in counts.items() if v or k != "row-tiles"))
    for gid, s in stats.items():
        if "note" in s:
            ctx.note(f"g{gid}: {s['note']}")
    if not tiles and ROW_TILES_KEY not in model.metadata:
        return edit.build(), edit.changed
    out = edit.build()
    if out is model:
        out = pcir.Model()
        out.CopyFrom(model)
    if tiles:
        out.metadata[ROW_TILES_KEY] = encode(tiles)
    else:
        del out.metadata[ROW_TILES_KEY]
    return out, True


def _ints(text) -> tuple[int, ...]:
    return tuple(int(x) for x in str(text).replace("/", ",").split(",") if x.strip())


def _sparse_to_dense(edit: ModelEdit, ctx, g: pcir.Group, edges: np.ndarray, cols: int) -> None:
    """SPARSE group g becomes DENSE: missing edges are zero weights (EM keeps
    them at 0, em_kernels.py), recorded as a gather with -1 for a new zero."""
    n = int(g.num_nodes)
    gather = np.full(n * cols, -1, dtype=np.int64)
    gather[edges[:, 0] * cols + edges[:, 1]] = np.arange(len(edges))
    _set_dense(edit, ctx, g, gather, cols)


# DENSE wins ties up to this factor: tiles or blocks in a layer of DENSE groups
# cost a partition of their own (three launches, ~6 us: more than a 128-row
# group's reads at batch 512), for a union a few columns short of the dense group's.
DENSE_MARGIN = 1.25
# False: a group whose blocks pass the padding tolerance is stored block-sparse
# unpriced (the code before branch sparseprice; bench/step_model.py `variant`)
PRICE_BLOCKS = True


@dataclass
class BlockCandidate:
    """The block-sparse form `_block_candidate` found for a sparse group
    (block 0: none within the padding tolerance)."""
    block: int = 0
    blocks: int = 0             # (parent block, child block) pairs present
    padding: float = 0.0
    note: str = ""              # permutation found, if any
    first_padding: float | None = None   # padding at the largest block tried
    edges: np.ndarray | None = None      # the edges under the permutation, if any
    permute: Callable | None = None      # apply(ctx): the permutation, in `edit`

    def unblocked(self) -> dict:
        """The stats of the group left SPARSE in the one-row form."""
        out = {"class": "sparse", "block_fraction": 1.0, "fill": 1.0}
        if self.first_padding is not None:
            out["note"] = (f"sparse (padding at the largest block would be "
                           f"{self.first_padding:.0%})")
        return out


def _choose_storage(edit, ctx, g, rd, tied, limit, found: BlockCandidate, priced: bool):
    """(stats, (R, bc) or None): the one place that stores a sparse (pruned)
    group. Candidates, in `run_cost`'s modeled reads: the block-sparse form
    `found` (`block_sparse_cost`), row tiles and the one-row form
    (`choose_tiles`), and DENSE (`dense_cost` at the layout's block sizes,
    option tile_dense, up to dense_max_params weights), which wins ties by
    DENSE_MARGIN; then the cheapest, blocks before tiles on a tie. Converts
    the group in `edit`; the tiles' (R, bc) come back for the metadata.
    Unpriced (`priced` False: no tiles, a tied group or a logic circuit;
    or a block candidate under tile_dense=false or PRICE_BLOCKS False): the
    blocks if found, else the one-row form."""
    tile_dense = bool(ctx.opt("tile_dense", True))
    if found.block and not (priced and tile_dense and PRICE_BLOCKS):
        return _store_blocks(edit, ctx, g, found), None
    if not priced:
        return found.unblocked(), None
    edges = np.asarray(edit.array(g.sum.edges), dtype=np.int64)
    may_permute = can_permute(edit, g.id, rd, tied)
    macs = float(ctx.opt("macs_per_read", 64.0))
    choice = choose_tiles(edit.model, g, edges, may_permute,
                          _ints(ctx.opt("tile_rows", "1/16/32/64/128")),
                          _ints(ctx.opt("tile_cols", "1/2/4/8/16/32/64/128")), macs)
    n, cols = int(g.num_nodes), int(child_offsets(edit.model, g)[-1])
    costs = {"best tiles": choice.cost, "one-row blocks": choice.rows_cost}
    if found.block:
        block_edges = blockify(found.edges, None, found.block, cols)[0]
        costs["blocks"] = block_sparse_cost(block_edges, found.block)
    bp, bc = dense_block_sizes(n, child_gcd(edit.model, g), limit)
    dense = dense_cost(n, cols, bp, bc, macs)
    rel = f"best tiles {choice.cost / choice.rows_cost:.2f}" + (
        f", blocks {costs['blocks'] / dense:.1f}x dense" if found.block else "")
    if (tile_dense and dense < DENSE_MARGIN * min(costs.values())
            and n * cols <= int(ctx.opt("dense_max_params", 1 << 24))):
        _sparse_to_dense(edit, ctx, g, edges, cols)
        return {"class": "dense", "block_fraction": 1.0, "fill": len(edges) / (n * cols),
                "note": f"dense: {len(edges)} edges stored as {n * cols}, modeled "
                        f"cost {dense / choice.rows_cost:.2f} of one-row blocks, {rel}"}, None
    if found.block and costs["blocks"] <= min(choice.cost, choice.rows_cost):
        stats = _store_blocks(edit, ctx, g, found)
        stats["note"] += (f", modeled cost {costs['blocks'] / dense:.2f} of dense, best tiles "
                          f"{choice.cost / dense:.2f}")
        return stats, None
    if choice.rows == 0:
        return found.unblocked(), None
    if choice.order is not None:
        apply_permutation(edit, ctx, g.id, choice.order, rd)
        g = edit.view(g.id)
        edges = np.asarray(edit.array(g.sum.edges), dtype=np.int64)
    sizes = [int(edit.model.groups[c].num_nodes) for c in g.sum.children]
    new_edges, gather = tile_edges(edges, tile_grid(int(g.num_nodes), sizes, choice.rows,
                                                    choice.cols))
    group = edit.group(g.id)
    edit.set_array(group.sum.edges, new_edges.astype(edit.array(group.sum.edges).dtype))
    if group.sum.weights:
        w = edit.array(group.sum.weights)
        edit.set_array(group.sum.weights, apply_gather(w, gather, (len(gather),)))
        ctx.rewrites.record(group.sum.weights, gather)
    return {
        "class": "row-tiles", "block_fraction": 1.0, "fill": len(edges) / max(len(gather), 1),
        "note": f"row tiles {choice.rows}x{choice.cols}: {len(edges)} edges stored as "
                f"{len(gather)} (padding {len(gather) / max(len(edges), 1) - 1:.0%}), modeled "
                f"cost {choice.cost / choice.rows_cost:.2f} of one-row blocks"
                + (f" (blocks {costs['blocks'] / choice.cost:.2f}x tiles)" if found.block else "")
    }, (choice.rows, choice.cols)


def _block_candidate(edit, ctx, g, cols, limit, tol, rd, tied) -> BlockCandidate:
    """Largest block b (from the candidate down to 2) at which the edges, as
    they are or after a co-clustering permutation (applied only if the
    blocks are stored), pad by <= tol; stored by `_store_blocks` or priced
    by `_choose_storage`."""
    edges = np.asarray(edit.array(g.sum.edges), dtype=np.int64)
    may_permute = bool(ctx.opt("permute", True)) and g.id not in tied
    b = candidate_block(edit.model, g, limit)
    first_pad = None
    while b >= 2:
        _, pad = _padding(edges, b, cols)
        first_pad = pad if first_pad is None else first_pad
        if pad > tol and may_permute and padding_floor(edges, b) <= tol:
            found = _find_permutation(edit, g, b, cols, rd, tied)
            if found is not None and found[0] <= tol:
                blocks, after_pad = _padding(found[2], b, cols)
                return BlockCandidate(b, blocks, after_pad, f"permutation: padding {pad:.0%} -> "
                                      f"{found[0]:.0%} at block {b}; ", first_pad, found[2],
                                      found[1])
        if pad <= tol:
            blocks, _ = _padding(edges, b, cols)
            return BlockCandidate(b, blocks, pad, "", first_pad, edges)
        b //= 2
    return BlockCandidate(first_padding=first_pad)


def _store_blocks(edit, ctx, g, found: BlockCandidate) -> dict:
    """Sparse group g becomes BLOCK_SPARSE at found.block (after its
    permutation, if any), missing edges of its present blocks as
    zero-weight pseudo-edges."""
    b = found.block
    if found.permute is not None:
        found.permute(ctx)
        g = edit.view(g.id)
    cols = int(child_offsets(edit.model, g)[-1])
    edges = np.asarray(edit.array(g.sum.edges), dtype=np.int64)
    weights = edit.array(g.sum.weights) if g.sum.weights else None
    block_edges, new_w, gather = blockify(edges, weights, b, cols)
    set_block_sparse(edit, ctx, g.id, block_edges, b, new_w, gather)
    total = (int(g.num_nodes) // b) * (cols // b)
    return {"class": "block-sparse", "block_size": b, "block_fraction": found.blocks / total,
            "fill": len(edges) / (found.blocks * b * b), "padding": found.padding,
            "note": found.note + f"block-sparse at {b}: {found.blocks}/{total} blocks, "
                    f"padding {found.padding:.0%}"}
