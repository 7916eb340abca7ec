"""`layout`: slots, parameter offsets and every index tensor of the Layout.

Takes the skeleton from `layerize` and the final model' and fills in
(ir/pcir.proto has the exact semantics):
  * slots: 0 = -inf, 1 = 0, then layer after layer, each layer contiguous,
    groups in the layer's order (input/product partitions contiguous);
  * sum parameters: a zero region of `reserved` entries (>= max_block_size,
    >= every child_block_size * parent_block_size so backward padding
    reads zeros), then each tie class's weights packed per parent block,
    then a zero tail so that padded forward reads
    (block_param_starts[b] + k * Bp + i, k < max_children) stay in range;
  * input parameters: each tie class's rows, row-major, from 0;
  * index tensors: slots int32 (int64 past 2^31 slots), parameter offsets
    int64, counts int32.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.passes.helpers.edit import index_dtype
from pccompiler.ir.nodes import is_node_model
from pccompiler.passes.node_layout import node_layout
from pccompiler.passes.layerize import block_sizes, forward_key, kernel_name, tiled_group_index, \
    tiles_of
from pccompiler.passes.registry import register
from pccompiler.passes.helpers.sum_index import backward_pairs, column_slots, dense_batch_index, \
    dense_batches, forward_blocks


def _param_count(model: pcir.Model, g: pcir.Group, table) -> int:
    name = g.input.params if g.kind == pcir.INPUT else g.sum.weights
    return int(np.prod(table.proto(name).dims, dtype=np.int64))


class _Tensors:
    """Collects the Layout's index tensors with their dtypes."""

    def __init__(self, layout: pcir.Layout, slot_dtype):
        self.layout, self.slot_dtype = layout, slot_dtype

    def add(self, name: str, array: np.ndarray, dtype) -> str:
        self.layout.tensors.append(ir.from_numpy(np.ascontiguousarray(array, dtype=dtype), name))
        return name


def _assign_slots(layout: pcir.Layout, model: pcir.Model) -> np.ndarray:
    slot_of = np.zeros(len(model.groups), dtype=np.int64)
    cursor = 2
    for layer in layout.layers:
        layer.slot_start = cursor
        for gid in layer.groups:
            slot_of[gid] = cursor
            cursor += int(model.groups[gid].num_nodes)
        layer.num_slots = cursor - layer.slot_start
    layout.num_slots = cursor
    return slot_of


def _assign_params(layout, model, table, sizes, owner_of):
    """param_start per group (tied groups share their owner's)."""
    reserved = max([1] + [max(bp, bc, bp * bc) for bp, bc in sizes.values()])
    sum_cursor, in_cursor = reserved, 0
    start: dict[int, int] = {}
    count: dict[int, int] = {}
    for layer in layout.layers:
        for gid in layer.groups:
            g = model.groups[gid]
            if g.kind == pcir.PRODUCT or owner_of[gid] != gid:
                continue
            count[gid] = _param_count(model, g, table)
            if g.kind == pcir.SUM:
                start[gid], sum_cursor = sum_cursor, sum_cursor + count[gid]
            else:
                start[gid], in_cursor = in_cursor, in_cursor + count[gid]
    for gid, owner in owner_of.items():
        if owner != gid and owner in start:
            start[gid], count[gid] = start[owner], count[owner]
    return start, count, reserved, sum_cursor, in_cursor


@register("layout", "assign slots and parameter offsets, build every index tensor "
          "(needs the layerize skeleton)", consumes="layout", produces="layout")
def layout_pass(skeleton: pcir.Layout, ctx) -> tuple[pcir.Layout, bool]:
    model = ctx.model
    if is_node_model(model):
        return node_layout(skeleton, model, ctx)
    table = ir.tensor_table(model)
    layout = pcir.Layout()
    layout.CopyFrom(skeleton)
    sizes = ctx.analysis.get("block_sizes") or block_sizes(model, ctx)
    owner_of = ir.tie_targets(model)
    slot_of = _assign_slots(layout, model)
    sdt = index_dtype(int(layout.num_slots))
    tensors = _Tensors(layout, sdt)
    pstart, pcount, reserved, sum_end, in_end = _assign_params(layout, model, table, sizes,
                                                               owner_of)
    tail = 0
    for li, layer in enumerate(layout.layers):
        groups = list(layer.groups)
        if layer.kind == pcir.INPUT_LAYER:
            _input_layer(li, layer, model, groups, slot_of, pstart, tensors)
        elif layer.kind == pcir.PRODUCT_LAYER:
            _product_layer(li, layer, model, groups, slot_of, table, tensors)
        else:
            tail = max(tail, _sum_layer(li, layer, model, groups, slot_of, pstart, sizes,
                                        table, tensors, ctx))
    for g in model.groups:
        bp = sizes[g.id][0] if g.kind == pcir.SUM else 0
        layout.placements.add(group=g.id, slot_start=int(slot_of[g.id]),
                              param_start=int(pstart.get(g.id, 0)),
                              param_count=int(pcount.get(g.id, 0)), block_size=bp)
    layout.num_sum_params = sum_end + tail
    layout.num_input_params = in_end
    layout.max_block_size = max([1] + [max(bp, bc) for bp, bc in sizes.values()])
    layout.root_group = int(model.roots[0])
    layout.root_slot = int(slot_of[model.roots[0]])
    layout.model_hash = ir.structure_hash(model)
    layout.metadata.update({"reserved_sum_params": str(reserved), "sum_params_tail": str(tail),
                            "slot_dtype": np.dtype(sdt).name})
    ctx.note(f"{layout.num_slots} slots, {layout.num_sum_params} sum params "
             f"({reserved} reserved, {tail} tail), {layout.num_input_params} input params")
    return layout, True


def _input_layer(li, layer, model, groups, slot_of, pstart, tensors) -> None:
    by_key = defaultdict(list)
    for gid in groups:
        g = model.groups[gid]
        ppn = ir.params_per_node(g.input.dist, model.variables[g.input.variable].num_cats)
        by_key[(int(g.input.dist), ppn)].append(gid)
    for pi, part in enumerate(layer.input_partitions):
        members = by_key[(int(part.dist), int(part.params_per_node))]
        part.slot_start = int(slot_of[members[0]])
        ppn = int(part.params_per_node)
        node_vars = np.concatenate([np.full(model.groups[g].num_nodes, model.groups[g].input.variable)
                                    for g in members])
        starts = np.concatenate([pstart[g] + np.arange(model.groups[g].num_nodes, dtype=np.int64)
                                 * ppn for g in members])
        part.node_vars = tensors.add(f"L{li}.in{pi}.node_vars", node_vars, np.int32)
        part.node_param_starts = tensors.add(f"L{li}.in{pi}.node_param_starts", starts, np.int64)


def _product_layer(li, layer, model, groups, slot_of, table, tensors) -> None:
    by_k = defaultdict(list)
    for gid in groups:
        by_k[len(model.groups[gid].product.children)].append(gid)
    for pi, part in enumerate(layer.product_partitions):
        members = by_k[int(part.num_children)]
        part.slot_start = int(slot_of[members[0]])
        blocks = []
        for gid in members:
            g = model.groups[gid]
            index = np.asarray(table[g.product.child_index], dtype=np.int64)
            blocks.append(index + slot_of[np.asarray(g.product.children)][None, :])
        part.child_slots = tensors.add(f"L{li}.prod{pi}.child_slots", np.concatenate(blocks),
                                       tensors.slot_dtype)


def _pad_to(matrix: np.ndarray, width: int) -> np.ndarray:
    if matrix.shape[1] == width:
        return matrix
    if matrix.shape[1] > width:
        return matrix[:, :width]
    out = np.zeros((matrix.shape[0], width), dtype=matrix.dtype)
    out[:, :matrix.shape[1]] = matrix
    return out


def _sum_layer(li, layer, model, groups, slot_of, pstart, sizes, table, tensors, ctx) -> int:
    """Fill the layer's forward and backward sum partitions; returns the tail needed."""
    fwd = defaultdict(list)      # (bp, kernel) -> [ForwardBlocks]
    bwd = defaultdict(list)      # (bc, bp) -> [(cslot, pslot, param)]
    batches, rest = dense_batches(model, groups, sizes)
    param_of = np.zeros(len(model.groups), dtype=np.int64)
    param_of[list(pstart)] = list(pstart.values())
    for key, gids in batches.items():
        fb, pairs = dense_batch_index(model, key, gids, slot_of, param_of)
        bp, bc = key[2]
        fwd[forward_key(bp, "block_dense", 0)].append(fb)
        bwd[(bc, bp)].append(pairs)
    tiles = tiles_of(model, ctx)
    for gid in rest:
        g = model.groups[gid]
        bp, bc = sizes[gid]
        edges = table[g.sum.edges] if g.sum.edges else None
        colslot = column_slots(model, g, slot_of)
        if gid in tiles:
            by_rows, by_cols = tiled_group_index(model, g, edges, tiles[gid], int(slot_of[gid]),
                                                 colslot, pstart[gid])
            for rows, fb in by_rows.items():
                fwd[forward_key(1, kernel_name(g, 1, True), rows)].append(fb)
            for cols, pairs in by_cols.items():
                bwd[(cols, 1)].append(pairs)
            continue
        fb = forward_blocks(g, edges, bp, int(slot_of[gid]), colslot, pstart[gid])
        fwd[forward_key(bp, kernel_name(g, bp), 0)].append(fb)
        bwd[(bc, bp)].append(backward_pairs(g, edges, bp, bc, int(slot_of[gid]), colslot,
                                            fb.param_starts))
    tail = 0
    for pi, part in enumerate(layer.sum_partitions):
        blocks = fwd[forward_key(int(part.block_size), part.kernel,
                                 int(part.kernel_options.get("tile_rows", 0)))]
        lo = int(part.kernel_options["min_children"])
        hi = int(part.kernel_options["max_children"])
        rows = [(fb, (fb.num_children >= lo) & (fb.num_children <= hi)) for fb in blocks]
        block_slots = np.concatenate([fb.block_slots[m] for fb, m in rows])
        num_children = np.concatenate([fb.num_children[m] for fb, m in rows])
        child = np.concatenate([_pad_to(np.asarray(fb.child_slots)[m], hi) for fb, m in rows])
        starts = np.concatenate([fb.param_starts[m] for fb, m in rows])
        assert len(block_slots) == part.num_blocks, "layerize and layout disagree"
        name = f"L{li}.sum{pi}"
        part.block_slots = tensors.add(f"{name}.block_slots", block_slots, tensors.slot_dtype)
        part.block_num_children = tensors.add(f"{name}.block_num_children", num_children, np.int32)
        part.child_slots = tensors.add(f"{name}.child_slots", child, tensors.slot_dtype)
        part.block_param_starts = tensors.add(f"{name}.block_param_starts", starts, np.int64)
        tail = max(tail, hi * int(part.block_size))
    for pi, part in enumerate(layer.sum_backward_partitions):
        pairs = bwd[(int(part.child_block_size), int(part.parent_block_size))]
        cslot = np.concatenate([p[0] for p in pairs])
        pslot = np.concatenate([p[1] for p in pairs])
        param = np.concatenate([p[2] for p in pairs])
        order = np.lexsort((pslot, cslot))
        cslot, pslot, param = cslot[order], pslot[order], param[order]
        uniq, first, counts = np.unique(cslot, return_index=True, return_counts=True)
        lo = int(part.kernel_options["min_parents"])
        hi = int(part.kernel_options["max_parents"])
        sel = (counts >= lo) & (counts <= hi)
        blk = np.repeat(np.cumsum(sel) - 1, counts)      # row in this partition
        keep = np.repeat(sel, counts)
        rank = np.arange(len(cslot)) - np.repeat(first, counts)
        parents = np.zeros((int(sel.sum()), hi), dtype=np.int64)
        params = np.zeros((int(sel.sum()), hi), dtype=np.int64)
        parents[blk[keep], rank[keep]] = pslot[keep]
        params[blk[keep], rank[keep]] = param[keep]
        assert int(sel.sum()) == part.num_blocks, "layerize and layout disagree"
        name = f"L{li}.bwd{pi}"
        part.cblock_slots = tensors.add(f"{name}.cblock_slots", uniq[sel], tensors.slot_dtype)
        part.cblock_num_parents = tensors.add(f"{name}.cblock_num_parents", counts[sel], np.int32)
        part.parent_slots = tensors.add(f"{name}.parent_slots", parents, tensors.slot_dtype)
        part.parent_param_starts = tensors.add(f"{name}.parent_param_starts", params, np.int64)
    return tail
