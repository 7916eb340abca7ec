"""`layerize` and `layout` of a node-form Model (pcir.NodeCircuit).

A node circuit has no groups to batch, so the plan is made from its arrays
in whole-array steps, linear in the nodes and edges:

  * levels: the longest path from the inputs (helpers/node_levels.py);
  * layers: level 0 is one input layer (one categorical partition); every
    later level is a product layer and/or a sum layer (products first;
    nodes of one level never read each other);
  * partitions: within a layer, nodes bucketed by fan-in class
    (1, 2, 3-4, 5-8, ...), each partition padded to its own largest
    fan-in, so padding stays below half;
  * slots: 2 + the node's rank in (layer, fan-in class, id) order;
  * sums: block size 1 (sparse kernels); the weight of child k of sum node
    n is sum_params[sum_param_start + w(n) + k], w(n) = the start of n's
    weights in NodeCircuit.sum_weights, so the Model's weights are packed
    as they are; backward partitions list each child's parents, bucketed
    by parent count the same way.

`layerize` computes the plan (kept in ctx.analysis["node_plan"]) and the
Layout's layers and partition headers; `layout` writes the index tensors
and the NodePlacement. Both are what the registered passes of the same
names run when the Model has a NodeCircuit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.nodes import INPUT, PRODUCT, SUM, NodeArrays, concat_ranges, node_arrays
from pccompiler.passes.helpers.edit import index_dtype
from pccompiler.passes.helpers.node_levels import node_levels
from pccompiler.version import __version__

NODE_PIPELINE = "verify,layerize,layout"
RESERVED = 1                       # sum_params[0] = 0.0 pads sums (block size 1)


@dataclass
class NodePlan:
    """Per-node slots and the partitions, as arrays over the (layer, class) runs."""
    a: NodeArrays
    level: np.ndarray           # int32 [N]
    order: np.ndarray           # node ids in slot order
    slot: np.ndarray            # int64 [N]
    run_start: np.ndarray       # first position in `order` of each partition
    run_end: np.ndarray
    run_layer: np.ndarray       # layer index of each partition
    layer_kind: np.ndarray      # GroupKind of each layer
    layer_level: np.ndarray
    weight_start: np.ndarray    # int64 [N]: start of a sum's weights in sum_weights


def fan_class(fan: np.ndarray) -> np.ndarray:
    """0 for fan-in <= 1, else ceil(log2(fan)): 1, 2, 3-4, 5-8, ..."""
    return np.ceil(np.log2(np.maximum(fan, 1))).astype(np.int64)


def plan_nodes(a: NodeArrays) -> NodePlan:
    """Levels, layers, partitions and slots of every node (no Python per node)."""
    level = node_levels(a)
    fan = a.fan_in()
    layer_key = 2 * level.astype(np.int64) + (a.kind == SUM)
    order = np.argsort(layer_key * 64 + fan_class(fan), kind="stable")      # ties: by id
    slot = np.empty(a.num_nodes, dtype=np.int64)
    slot[order] = 2 + np.arange(a.num_nodes)
    key_o, cls_o = layer_key[order], fan_class(fan)[order]
    cut = np.flatnonzero((key_o[1:] != key_o[:-1]) | (cls_o[1:] != cls_o[:-1])) + 1
    run_start = np.r_[0, cut]
    run_end = np.r_[cut, a.num_nodes]
    lkeys, run_layer = np.unique(key_o[run_start], return_inverse=True)
    first_nodes = order[run_start[np.searchsorted(run_layer, np.arange(len(lkeys)))]]
    sums = a.kind == SUM
    weight_start = np.zeros(a.num_nodes, dtype=np.int64)
    weight_start[sums] = np.cumsum(fan[sums]) - fan[sums]
    return NodePlan(a, level, order, slot, run_start, run_end, run_layer,
                    a.kind[first_nodes].astype(np.int64), lkeys // 2, weight_start)


def node_layerize(model: pcir.Model, ctx) -> tuple[pcir.Layout, bool]:
    """The layerize pass on a node-form Model."""
    plan = plan_nodes(node_arrays(model))
    ctx.analysis["node_plan"] = plan
    a, fan = plan.a, plan.a.fan_in()
    layout = pcir.Layout(ir_version=ir.IR_VERSION, pipeline=ctx.pipeline,
                         compiler_version=__version__, num_vars=len(model.variables))
    kinds = {INPUT: pcir.INPUT_LAYER, PRODUCT: pcir.PRODUCT_LAYER, SUM: pcir.SUM_LAYER}
    layers = [layout.layers.add(kind=kinds[int(k)], level=int(lv))
              for k, lv in zip(plan.layer_kind, plan.layer_level)]
    width = a.input_params.shape[1] if a.input_params.ndim == 2 else 1
    runs_max = np.maximum.reduceat(fan[plan.order], plan.run_start) if a.num_nodes else []
    runs_min = np.minimum.reduceat(fan[plan.order], plan.run_start) if a.num_nodes else []
    for r, li in enumerate(plan.run_layer.tolist()):
        n = int(plan.run_end[r] - plan.run_start[r])
        layer, hi, lo = layers[li], int(runs_max[r]), int(runs_min[r])
        if layer.kind == pcir.INPUT_LAYER:
            layer.input_partitions.add(dist=pcir.CATEGORICAL_DIST, num_nodes=n,
                                       params_per_node=width)
        elif layer.kind == pcir.PRODUCT_LAYER:
            layer.product_partitions.add(num_nodes=n, num_children=hi)
        else:
            real = int(fan[plan.order[plan.run_start[r]:plan.run_end[r]]].sum())
            sp = layer.sum_partitions.add(block_size=1, num_blocks=n, max_children=hi,
                                          kernel="sparse")
            sp.kernel_options.update({"min_children": str(lo), "max_children": str(hi),
                                      "padding": f"{1 - real / (hi * n):.3f}"})
    ctx.note(f"{len(layers)} layers, {len(plan.run_start)} forward partitions, "
             f"{int(plan.level.max(initial=0))} levels, {a.num_nodes} nodes")
    return layout, True


class _Tensors:
    def __init__(self, layout: pcir.Layout):
        self.layout = layout

    def add(self, name: str, array: np.ndarray, dtype) -> str:
        self.layout.tensors.append(ir.from_numpy(np.ascontiguousarray(array, dtype=dtype), name))
        return name


def _padded(kids: np.ndarray, seg: np.ndarray, width: int, pad: int, dtype) -> np.ndarray:
    """[len(seg), width]: row i holds kids[seg[i] : seg[i + 1]], padded with `pad`."""
    out = np.full((len(seg), width), pad, dtype=dtype)
    fan = np.diff(np.r_[seg, len(kids)])
    out[np.repeat(np.arange(len(seg)), fan), np.arange(len(kids)) - np.repeat(seg, fan)] = kids
    return out


def node_layout(skeleton: pcir.Layout, model: pcir.Model, ctx) -> tuple[pcir.Layout, bool]:
    """The layout pass on a node-form Model (slots, index tensors, placement)."""
    plan = ctx.analysis.get("node_plan") or plan_nodes(node_arrays(model))
    a = plan.a
    layout = pcir.Layout()
    layout.CopyFrom(skeleton)
    n = a.num_nodes
    num_slots = 2 + n
    sdt = index_dtype(num_slots)
    t = _Tensors(layout)
    fan = a.fan_in()
    width = a.input_params.shape[1] if a.input_params.ndim == 2 else 1
    s_count = len(a.sum_weights)
    sum_start, tail = RESERVED, 0
    input_row = np.cumsum(a.kind == INPUT) - 1                  # row of an input node
    slot_of_kid = plan.slot[a.child_ids]                        # [E] child slots
    run = 0
    for li, layer in enumerate(layout.layers):
        first = int(plan.run_start[run])
        if layer.kind == pcir.INPUT_LAYER:
            parts = layer.input_partitions
        elif layer.kind == pcir.PRODUCT_LAYER:
            parts = layer.product_partitions
        else:
            parts = layer.sum_partitions
        layer.slot_start = 2 + first
        end = first
        for pi, part in enumerate(parts):
            nodes = plan.order[plan.run_start[run]:plan.run_end[run]]
            end = int(plan.run_end[run])
            run += 1
            name = f"L{li}.{pi}"
            if layer.kind == pcir.INPUT_LAYER:
                part.slot_start = int(plan.slot[nodes[0]])
                part.node_vars = t.add(f"{name}.node_vars", a.input_vars[input_row[nodes]],
                                       np.int32)
                part.node_param_starts = t.add(f"{name}.node_param_starts",
                                               input_row[nodes] * width, np.int64)
                continue
            off = a.child_offsets
            e = concat_ranges(off[nodes], fan[nodes])
            seg = np.cumsum(fan[nodes]) - fan[nodes]
            if layer.kind == pcir.PRODUCT_LAYER:
                part.slot_start = int(plan.slot[nodes[0]])
                part.child_slots = t.add(f"{name}.child_slots", _padded(
                    slot_of_kid[e], seg, int(part.num_children), 1, sdt), sdt)
                continue
            k = int(part.max_children)
            part.block_slots = t.add(f"{name}.block_slots", plan.slot[nodes], sdt)
            part.block_num_children = t.add(f"{name}.block_num_children", fan[nodes], np.int32)
            part.child_slots = t.add(f"{name}.child_slots",
                                     _padded(slot_of_kid[e], seg, k, 0, sdt), sdt)
            part.block_param_starts = t.add(f"{name}.block_param_starts",
                                            sum_start + plan.weight_start[nodes], np.int64)
            tail = max(tail, k)
        layer.num_slots = end - first
        if layer.kind == pcir.SUM_LAYER:
            _backward(layer, li, plan, fan, sum_start, slot_of_kid, sdt, t)
    layout.num_slots = num_slots
    layout.num_sum_params = sum_start + s_count + tail
    layout.num_input_params = int(np.sum(a.kind == INPUT)) * width
    layout.max_block_size = 1
    layout.root_group = -1
    layout.root_slot = int(plan.slot[a.roots[0]])
    layout.model_hash = ir.structure_hash(model)
    layout.metadata.update({"reserved_sum_params": str(RESERVED), "sum_params_tail": str(tail),
                            "slot_dtype": np.dtype(sdt).name, "form": "nodes"})
    np_ = layout.node_placement
    np_.node_slots = t.add("nodes.node_slots", plan.slot, sdt)
    np_.sum_param_start, np_.sum_param_count = sum_start, s_count
    np_.input_param_start, np_.input_param_count = 0, int(layout.num_input_params)
    ctx.note(f"{num_slots} slots, {layout.num_sum_params} sum params ({RESERVED} reserved, "
             f"{tail} tail), {layout.num_input_params} input params")
    return layout, True


def _backward(layer: pcir.Layer, li: int, plan: NodePlan, fan: np.ndarray, sum_start: int,
              slot_of_kid: np.ndarray, sdt, t: _Tensors) -> None:
    """The layer's backward partitions: each child's parents in this layer,
    children bucketed by parent count (padding: slot 0, param 0)."""
    a = plan.a
    lo, hi = layer.slot_start, layer.slot_start + layer.num_slots
    nodes = plan.order[lo - 2:hi - 2]
    e = concat_ranges(a.child_offsets[nodes], fan[nodes])
    k = np.arange(len(e)) - np.repeat(np.cumsum(fan[nodes]) - fan[nodes], fan[nodes])
    pslot = np.repeat(plan.slot[nodes], fan[nodes])
    param = sum_start + np.repeat(plan.weight_start[nodes], fan[nodes]) + k
    cslot = slot_of_kid[e]
    o = np.argsort(cslot, kind="stable")           # pslot ascends already: stays so per child
    cslot, pslot, param = cslot[o], pslot[o], param[o]
    first = np.flatnonzero(np.r_[True, cslot[1:] != cslot[:-1]])
    uniq, counts = cslot[first], np.diff(np.r_[first, len(cslot)])
    cls = fan_class(counts)
    rank = np.arange(len(cslot)) - np.repeat(first, counts)
    for c in np.flatnonzero(np.bincount(cls)).tolist():
        sel = cls == c
        keep = np.repeat(sel, counts)
        width = int(counts[sel].max())
        row = np.repeat(np.cumsum(sel) - 1, counts)[keep]
        parents = np.zeros((int(sel.sum()), width), dtype=np.int64)
        params = np.zeros((int(sel.sum()), width), dtype=np.int64)
        parents[row, rank[keep]] = pslot[keep]
        params[row, rank[keep]] = param[keep]
        bp = layer.sum_backward_partitions.add(
            child_block_size=1, parent_block_size=1, num_blocks=int(sel.sum()),
            max_parents=width, kernel="child_block")
        bp.kernel_options.update({"min_parents": str(int(counts[sel].min())),
                                  "max_parents": str(width)})
        name = f"L{li}.bwd{len(layer.sum_backward_partitions) - 1}"
        bp.cblock_slots = t.add(f"{name}.cblock_slots", uniq[sel], sdt)
        bp.cblock_num_parents = t.add(f"{name}.cblock_num_parents", counts[sel], np.int32)
        bp.parent_slots = t.add(f"{name}.parent_slots", parents, sdt)
        bp.parent_param_starts = t.add(f"{name}.parent_param_starts", params, np.int64)
