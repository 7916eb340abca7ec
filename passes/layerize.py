"""`layerize`: topological levels -> layers -> partitions (a Layout skeleton).

Inputs are level 0; every other group sits one level above its deepest
child. Groups of one kind at one level form a layer (all values live in one
buffer, so a sum whose children sit at different depths needs no
pass-through layers). Each layer is split into partitions a kernel runs as
one launch: inputs by distribution, products by fan-in, sums by
(block size, kernel) and then into <= `partitions` fan-in ranges chosen to
minimise padded children (sum_index.fan_in_split); backward sum partitions
likewise by (child block, parent block) sizes and number of parents.

The output is a Layout whose layers, group order and partition shapes are
final; `layout` fills slots, parameter offsets and index tensors. A sum
partition's fan-in range is kernel_options["min_children"/"max_children"].
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.passes.helpers import blocks as block_rules
from pccompiler.passes.helpers.blocks import group_block_sizes
from pccompiler.passes.partition_blocks import effective_limit
from pccompiler.ir.nodes import is_node_model
from pccompiler.passes.node_layout import node_layerize
from pccompiler.passes.helpers.row_tiles import row_tiles, tile_grid
from pccompiler.passes.registry import register
from pccompiler.passes.helpers.sum_index import backward_pairs, column_slots, dense_batch_index, \
    dense_batches, fan_in_split, forward_blocks, tiled_index
from pccompiler.passes.tie_params import tie_classes
from pccompiler.version import __version__



def kernel_name(g: pcir.Group, bp: int, tiled: bool = False) -> str:
    if tiled:
        return "row_tiles"
    if g.sum.pattern == pcir.DENSE:
        return "block_dense"
    if g.sum.pattern == pcir.BLOCK_SPARSE and bp > 1:
        return "block_sparse"
    return "sparse"


def levels(model: pcir.Model) -> np.ndarray:
    """Topological level of every group (inputs 0)."""
    level = np.zeros(len(model.groups), dtype=np.int64)
    for g in model.groups:
        if g.kind == pcir.PRODUCT:
            level[g.id] = 1 + max(level[c] for c in g.product.children)
        elif g.kind == pcir.SUM:
            level[g.id] = 1 + max(level[c] for c in g.sum.children)
    return level


def block_sizes(model: pcir.Model, ctx) -> dict[int, tuple[int, int]]:
    """(Bp, Bc) per sum group of the current model' (row-tiled groups: one-row
    blocks whose backward reads child blocks of the tile's column block)."""
    limit = effective_limit(ctx)
    sizes = {g.id: group_block_sizes(model, g, limit) for g in model.groups
             if g.kind == pcir.SUM}
    _join_one_row_runs(model, sizes)
    sizes.update({gid: (1, bc) for gid, (_, bc) in tiles_of(model, ctx).items()})
    return sizes


def _join_one_row_runs(model: pcir.Model, sizes: dict[int, tuple[int, int]]) -> None:
    """At a level where some DENSE group has one-row blocks (an odd size,
    blocks.group_block_sizes), the level's other DENSE groups of up to
    RUN_ROWS rows take one-row blocks too: each is one run of its rows
    either way (the triton plan's aligned or unequal runs), and one block
    size makes one partition, three launches per layer fewer (a pruned
    HCLT-128 keeps some groups at 128 rows among groups of 121..127)."""
    level = levels(model)
    dense = [g for g in model.groups if g.kind == pcir.SUM and g.sum.pattern == pcir.DENSE]
    odd = {int(level[g.id]) for g in dense
           if sizes[g.id][0] == 1 and g.num_nodes >= block_rules.RUN_BLOCK}
    for g in dense:
        if int(level[g.id]) in odd and block_rules.RUN_BLOCK <= g.num_nodes <= block_rules.RUN_ROWS:
            sizes[g.id] = (1, sizes[g.id][1])


def tiles_of(model: pcir.Model, ctx) -> dict[int, tuple[int, int]]:
    """{gid: (R, bc)} of the model's checked row tiles, once per compile."""
    if "row_tiles" not in ctx.analysis:
        ctx.analysis["row_tiles"] = row_tiles(model, ir.tensor_table(model))
    return ctx.analysis["row_tiles"]


def forward_key(bp: int, kernel: str, tile_rows: int) -> tuple:
    """Partition key of forward blocks: (block size, kernel, tile rows or 0);
    a partition holds one tile size so that its tiles stay aligned."""
    return (bp, kernel, tile_rows)


def tiled_group_index(model: pcir.Model, g: pcir.Group, edges, tile: tuple[int, int],
                      slot_start: int, colslot: np.ndarray, param_start: int):
    """sum_index.tiled_index of row-tiled group g at its recorded (R, bc)."""
    sizes = [int(model.groups[c].num_nodes) for c in g.sum.children]
    grid = tile_grid(int(g.num_nodes), sizes, *tile)
    return tiled_index(g, edges, grid, slot_start, colslot, param_start)


def _sum_fanins(model, groups, sizes, table, virtual_slot, tiles):
    """Forward fan-ins per forward_key, backward parent counts per (Bc, Bp),
    and the forward keys of each group."""
    fwd: dict[tuple, list] = defaultdict(list)
    bwd: dict[tuple, list] = defaultdict(list)
    group_keys: dict[int, set] = defaultdict(set)
    batches, rest = dense_batches(model, groups, sizes)
    no_params = np.zeros(len(model.groups), dtype=np.int64)
    for key, gids in batches.items():
        fb, (cslots, _, _) = dense_batch_index(model, key, gids, virtual_slot, no_params)
        bp, bc = key[2]
        fwd[forward_key(bp, "block_dense", 0)].append(fb.num_children)
        bwd[(bc, bp)].append(cslots)
        for g in gids:
            group_keys[g].add(forward_key(bp, "block_dense", 0))
    for gid in rest:
        g = model.groups[gid]
        bp, bc = sizes[gid]
        edges = table[g.sum.edges] if g.sum.edges else None
        colslot = column_slots(model, g, virtual_slot)
        if gid in tiles:
            by_rows, by_cols = tiled_group_index(model, g, edges, tiles[gid],
                                                 int(virtual_slot[gid]), colslot, 0)
            for rows, fb in by_rows.items():
                key = forward_key(1, kernel_name(g, 1, True), rows)
                fwd[key].append(fb.num_children)
                group_keys[gid].add(key)
            for cols, pairs in by_cols.items():
                bwd[(cols, 1)].append(pairs[0])
            continue
        fb = forward_blocks(g, edges, bp, int(virtual_slot[gid]), colslot, 0)
        key = forward_key(bp, kernel_name(g, bp), 0)
        fwd[key].append(fb.num_children)
        group_keys[gid].add(key)
        cslots, _, _ = backward_pairs(g, edges, bp, bc, int(virtual_slot[gid]), colslot,
                                      fb.param_starts)
        bwd[(bc, bp)].append(cslots)
    return fwd, bwd, group_keys


def _tile_options(model, members, tiles, rows) -> dict[str, str]:
    """Kernel options of a row-tile partition: the tile shape and the share
    of zero-weight pseudo-edges over its groups (what `pcc dump` shows)."""
    col_blocks = sorted({tiles[g][1] for g in members})
    return {"tile_rows": str(rows), "tile_cols": "/".join(map(str, col_blocks)),
            "tile_groups": str(len(members))}


@register("layerize", "topological levels -> layers (one kind per level) -> partitions of "
          "similar fan-in (<= partitions per sum block-size class)",
          consumes="model", produces="layout", defaults={"partitions": 4})
def layerize(model: pcir.Model, ctx) -> tuple[pcir.Layout, bool]:
    if is_node_model(model):
        return node_layerize(model, ctx)
    max_parts = int(ctx.opt("partitions", 4))
    table = ir.tensor_table(model)
    level = levels(model)
    sizes = block_sizes(model, ctx)
    ctx.analysis["block_sizes"] = sizes
    classes = tie_classes(model)
    shared = {m for members in classes.values() if len(members) > 1 for m in members}
    virtual = np.concatenate([[0], np.cumsum([g.num_nodes for g in model.groups])])
    layout = pcir.Layout(ir_version=ir.IR_VERSION, pipeline=ctx.pipeline,
                         compiler_version=__version__, num_vars=len(model.variables))
    by_layer: dict[tuple, list[int]] = defaultdict(list)
    for g in model.groups:
        by_layer[(int(level[g.id]), int(g.kind))].append(g.id)
    n_parts = 0
    for (lvl, kind) in sorted(by_layer):
        gids = by_layer[(lvl, kind)]
        layer = layout.layers.add(kind={pcir.INPUT: pcir.INPUT_LAYER, pcir.PRODUCT:
                                        pcir.PRODUCT_LAYER, pcir.SUM: pcir.SUM_LAYER}[kind],
                                  level=lvl)
        if kind == pcir.INPUT:
            key = {g: (model.groups[g].input.dist, ir.params_per_node(
                model.groups[g].input.dist,
                model.variables[model.groups[g].input.variable].num_cats)) for g in gids}
            gids = sorted(gids, key=lambda g: (key[g], g))
            for k in sorted(set(key.values())):
                members = [g for g in gids if key[g] == k]
                layer.input_partitions.add(
                    dist=k[0], params_per_node=k[1],
                    num_nodes=sum(model.groups[g].num_nodes for g in members),
                    has_ties=any(g in shared for g in members))
        elif kind == pcir.PRODUCT:
            key = {g: len(model.groups[g].product.children) for g in gids}
            gids = sorted(gids, key=lambda g: (key[g], g))
            for k in sorted(set(key.values())):
                layer.product_partitions.add(
                    num_children=k,
                    num_nodes=sum(model.groups[g].num_nodes for g in gids if key[g] == k))
        else:
            tiles = tiles_of(model, ctx)
            fwd, bwd, group_kernel = _sum_fanins(model, gids, sizes, table, virtual, tiles)
            for (bp, kern, rows) in sorted(fwd):
                fan = np.concatenate(fwd[(bp, kern, rows)])
                members = [g for g in gids if (bp, kern, rows) in group_kernel[g]]
                # row tiles of one size in one partition: their kernels stop at each
                # run's own fan-in (empty child chunks exit at once), so a fan-in
                # range buys no padding back and costs three launches
                # (bench/step_model.py: HCLT-128 keep 0.1, bench/results/sparse_step-*)
                # likewise one-row DENSE blocks (odd-sized groups, blocks.group_block_sizes),
                # whose runs are whole groups (triton plan.run_table)
                parts = 1 if kern == "row_tiles" or (kern == "block_dense" and bp == 1) \
                    else max_parts
                for lo, hi in fan_in_split(fan, parts):
                    sel = (fan >= lo) & (fan <= hi)
                    sp = layer.sum_partitions.add(
                        block_size=bp, num_blocks=int(sel.sum()), max_children=hi,
                        kernel=kern, has_ties=any(g in shared for g in members))
                    sp.kernel_options.update({"min_children": str(lo), "max_children": str(hi),
                                              "padding": f"{1 - fan[sel].sum() / (hi * sel.sum()):.3f}"})
                    if rows:
                        sp.kernel_options.update(_tile_options(model, members, tiles, rows))
            for (bc, bp) in sorted(bwd):
                _, counts = np.unique(np.concatenate(bwd[(bc, bp)]), return_counts=True)
                for lo, hi in fan_in_split(counts, max_parts):
                    sel = (counts >= lo) & (counts <= hi)
                    bp_part = layer.sum_backward_partitions.add(
                        child_block_size=bc, parent_block_size=bp, num_blocks=int(sel.sum()),
                        max_parents=hi, kernel="child_block")
                    bp_part.kernel_options.update({"min_parents": str(lo),
                                                   "max_parents": str(hi)})
        layer.groups.extend(gids)
        n_parts += (len(layer.input_partitions) + len(layer.product_partitions)
                    + len(layer.sum_partitions))
    ctx.note(f"{len(layout.layers)} layers, {n_parts} forward partitions, "
             f"{int(level.max(initial=0))} levels")
    return layout, True
