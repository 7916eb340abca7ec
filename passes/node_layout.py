"""`layerize` and `layout` of a node-form Model (pcir.NodeCircuit).

A node circuit has no groups to batch, so the plan is made from its arrays
in whole-array steps, linear in the nodes and edges:

  * levels: the longest path from the inputs (helpers/node_levels.py);
  * layers: level 0 is one input layer (one categorical partition); every
    later level is a product layer and/or a sum layer (products first;
    nodes of one level never read each other);
  * partitions: within a layer, nodes bucketed by fan-in class
    (1, 2, 3-4, 5-8, ...), each partition padded to its own largest
    fan-in, so padding stays below half; a layer that one partition holds
    with at most MERGE_PADDING padding entries is one partition
    (helpers/node_tables.layer_classes: small circuits);
  * slots: 2 + the node's rank in (layer, fan-in class, id) order;
  * sums: block size 1 (sparse kernels); the weight of child k of sum node
    n is sum_params[sum_param_start + w(n) + k], w(n) = the start of n's
    weights in NodeCircuit.sum_weights, so the Model's weights are packed
    as they are; backward partitions list each child's parents, bucketed
    by parent count the same way (helpers/node_tables.py builds the index
    tables of all partitions at once; node_backward.py the backward ones,
    here or, with compile_model(backward=False), on demand).

`layerize` computes the plan (kept in ctx.analysis["node_plan"]) and the
Layout's layers and partition headers; `layout` writes the index tensors
and the NodePlacement. Both are what the registered passes of the same
names run when the Model has a NodeCircuit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.nodes import (INPUT, PRODUCT, SUM, TENSOR_FIELDS, NodeArrays, gather_ranges,
                                  node_arrays, stable_argsort)
from pccompiler.passes.helpers.edit import add_index_tensor, index_dtype
from pccompiler.passes.helpers.node_levels import node_levels
from pccompiler.passes.helpers.node_tables import BackwardTables, backward_tables, \
    layer_classes, padded_tables, segment_ranks
from pccompiler.passes.node_backward import DEFERRED, DEFERRED_KEY, add_partitions, sum_edges
from pccompiler.passes.verify import checked_tensors
from pccompiler.version import __version__

NODE_PIPELINE = "verify,layerize,layout"
# ctx.analysis key: (the Layout this pass made, its index tensors' decoded
# arrays by name), which compile_model returns as CompileResult.layout_arrays
LAYOUT_ARRAYS = "layout_arrays"
RESERVED = 1                       # sum_params[0] = 0.0 pads sums (block size 1)
# Below this many edges the backward tables' sum edges come from the edge
# array in a few whole-array steps (`sum_edge_arrays`): node_backward.sum_edges'
# dozen numpy calls per sum partition were a third of a 2k-node circuit's
# layout pass. Above it sum_edges fills its arrays partition by partition,
# with no temporary the length of all edges (fresh memory of 10^7 entries
# costs more than the calls there). node_layout keeps its index tensors'
# decoded arrays for the engine (LAYOUT_ARRAYS) up to the same size.
WHOLE_EDGES_MAX = 1 << 20


@dataclass
class NodePlan:
    """Per-node slots and the partitions, as arrays over the (layer, class)
    runs; the per-position arrays are in slot order (position p holds slot
    2 + p), made once here for both passes."""
    a: NodeArrays
    level: np.ndarray           # int32 [N]
    order: np.ndarray           # node ids in slot order
    slot: np.ndarray            # [N], the slot dtype (index_dtype(N + 2))
    run_start: np.ndarray       # first position in `order` of each partition
    run_end: np.ndarray
    run_layer: np.ndarray       # layer index of each partition
    layer_kind: np.ndarray      # GroupKind of each layer
    layer_level: np.ndarray
    fan_o: np.ndarray           # int64 [N]: fan-in of each position's node
    wstart_o: np.ndarray        # int64 [N]: a sum's first weight in sum_params (at sums)
    run_max: np.ndarray         # per partition: its largest, smallest and total fan-in
    run_min: np.ndarray
    run_fan: np.ndarray


def plan_nodes(a: NodeArrays) -> NodePlan:
    """Levels, layers, partitions and slots of every node (no Python per
    node). The runs come from the count of each (layer, class) key, not
    from the sorted keys; fan-ins and weight starts are gathered into slot
    order once (each such gather of 10^7 random reads costs 50-100 ms)."""
    level = node_levels(a)
    fan = a.fan_in()
    wide = np.int32 if int(level.max(initial=0)) < 2 ** 23 else np.int64   # int32: half the bytes
    layer_key = 2 * level.astype(wide)
    layer_key += a.kind == SUM
    run_key = layer_key * 64
    np.add(run_key, layer_classes(layer_key, fan), out=run_key,
           casting="unsafe")                                     # (layer, class), class < 64
    del layer_key
    order = stable_argsort(run_key)                              # ties: by id
    counts = np.bincount(run_key)
    del run_key
    keys = np.flatnonzero(counts)                                # the runs' keys, ascending
    run_end = np.cumsum(counts[keys])
    run_start = run_end - counts[keys]
    lkeys, run_layer = np.unique(keys // 64, return_inverse=True)
    slot = np.empty(a.num_nodes, dtype=index_dtype(a.num_nodes + 2))
    slot[order] = np.arange(2, a.num_nodes + 2, dtype=slot.dtype)
    fan_o = fan[order]
    sums = a.kind == SUM
    wstart = np.multiply(fan, sums)
    np.cumsum(wstart, out=wstart)                                # inclusive, in id order
    wstart_o = wstart[order]
    del wstart
    wstart_o -= fan_o                                            # exclusive: right at sums
    wstart_o += RESERVED                                         # sum_params[0] pads
    first_nodes = order[run_start[np.searchsorted(run_layer, np.arange(len(lkeys)))]]
    some = a.num_nodes > 0
    return NodePlan(a, level, order, slot, run_start, run_end, run_layer,
                    a.kind[first_nodes].astype(np.int64), lkeys // 2, fan_o, wstart_o,
                    np.maximum.reduceat(fan_o, run_start) if some else run_start,
                    np.minimum.reduceat(fan_o, run_start) if some else run_start,
                    np.add.reduceat(fan_o, run_start) if some else run_start)


def model_arrays(model: pcir.Model, ctx) -> NodeArrays:
    """The Model's node arrays: the tensors the verify pass of this compile
    decoded, when it checked this Model, else decoded here."""
    table = checked_tensors(model, ctx)
    names = {getattr(model.nodes, field) for field in TENSOR_FIELDS}
    return node_arrays(model, table if table is not None and names <= table.keys() else None)


def node_layerize(model: pcir.Model, ctx) -> tuple[pcir.Layout, bool]:
    """The layerize pass on a node-form Model."""
    plan = plan_nodes(model_arrays(model, ctx))
    ctx.analysis["node_plan"] = plan
    a = plan.a
    layout = pcir.Layout(ir_version=ir.IR_VERSION, pipeline=ctx.pipeline,
                         compiler_version=__version__, num_vars=len(model.variables))
    kinds = {INPUT: pcir.INPUT_LAYER, PRODUCT: pcir.PRODUCT_LAYER, SUM: pcir.SUM_LAYER}
    layers = [layout.layers.add(kind=kinds[int(k)], level=int(lv))
              for k, lv in zip(plan.layer_kind, plan.layer_level)]
    width = a.input_params.shape[1] if a.input_params.ndim == 2 else 1
    runs = zip(plan.run_layer.tolist(), (plan.run_end - plan.run_start).tolist(),
               plan.run_max.tolist(), plan.run_min.tolist(), plan.run_fan.tolist())
    for li, n, hi, lo, real in runs:
        layer = layers[li]
        if layer.kind == pcir.INPUT_LAYER:
            layer.input_partitions.add(dist=pcir.CATEGORICAL_DIST, num_nodes=n,
                                       params_per_node=width)
        elif layer.kind == pcir.PRODUCT_LAYER:
            layer.product_partitions.add(num_nodes=n, num_children=hi)
        else:
            sp = layer.sum_partitions.add(block_size=1, num_blocks=n, max_children=hi,
                                          kernel="sparse")
            options = sp.kernel_options      # item by item: a map's update() runs in Python
            options["min_children"], options["max_children"] = str(lo), str(hi)
            options["padding"] = f"{1 - real / (hi * n):.3f}"
    ctx.note(f"{len(layers)} layers, {len(plan.run_start)} forward partitions, "
             f"{int(plan.level.max(initial=0))} levels, {a.num_nodes} nodes")
    return layout, True


class _Tensors:
    """Adds the Layout's index tensors, and with `keep` keeps each one's
    decoded form (`decoded`) for the engine of this process
    (CompileResult.layout_arrays)."""

    def __init__(self, layout: pcir.Layout, keep: bool):
        self.layout = layout
        self.decoded: dict[str, np.ndarray] | None = {} if keep else None

    def add(self, name: str, array: np.ndarray, dtype) -> str:
        add_index_tensor(self.layout.tensors, array, name, dtype, self.decoded)
        return name


def node_layout(skeleton: pcir.Layout, model: pcir.Model, ctx) -> tuple[pcir.Layout, bool]:
    """The layout pass on a node-form Model (slots, index tensors, placement)."""
    plan = ctx.analysis.get("node_plan") or plan_nodes(model_arrays(model, ctx))
    a = plan.a
    model_hash = _structure_hash_beside(model, a)
    layout = pcir.Layout()
    layout.CopyFrom(skeleton)
    n = a.num_nodes
    num_slots = 2 + n
    sdt = index_dtype(num_slots)
    # decoded arrays for the engine (CompileResult.layout_arrays): small circuits only,
    # where decoding hundreds of tensors costs more than their bytes; a large one's
    # would keep its Layout's bytes twice from here to the plans' build
    t = _Tensors(layout, ctx.keep_layout_arrays and len(a.child_ids) <= WHOLE_EDGES_MAX)
    width = a.input_params.shape[1] if a.input_params.ndim == 2 else 1
    s_count = len(a.sum_weights)
    sum_start, tail = RESERVED, 0
    input_ids = np.flatnonzero(a.kind == INPUT)                 # row r: input node input_ids[r]
    kid_slot = _edge_slots(plan)
    fwd = _forward_tables(plan, kid_slot, sdt)
    pos_slot = np.arange(2, num_slots, dtype=sdt)               # slot of each position
    fan_o = plan.fan_o.astype(np.int32)
    wstart_o = plan.wstart_o                                    # sum_start included
    backward = ctx.backward
    bwd = _backward(plan, kid_slot, fwd, pos_slot, fan_o, sdt) if backward else None
    run, back = 0, 0
    # Python ints (a numpy scalar per read cost a 2k-node circuit's loop ~0.1 ms)
    run_start, run_end = plan.run_start.tolist(), plan.run_end.tolist()
    bwd_layer = bwd.layer.tolist() if bwd is not None else []
    for li, layer in enumerate(layout.layers):
        first = run_start[run]
        kind = layer.kind
        if kind == pcir.INPUT_LAYER:
            parts = layer.input_partitions
        elif kind == pcir.PRODUCT_LAYER:
            parts = layer.product_partitions
        else:
            parts = layer.sum_partitions
        layer.slot_start = 2 + first
        end = first
        for pi, part in enumerate(parts):
            lo, end = run_start[run], run_end[run]
            name = f"L{li}.{pi}"
            if kind == pcir.INPUT_LAYER:
                part.slot_start = 2 + lo
                # each node's row: the inputs up to it, less one (a search in
                # the few input ids, not a running count over every node)
                rows = np.searchsorted(input_ids, plan.order[lo:end], side="right") - 1
                part.node_vars = t.add(f"{name}.node_vars", a.input_vars[rows], np.int32)
                part.node_param_starts = t.add(f"{name}.node_param_starts", rows * width,
                                               np.int64)
            elif kind == pcir.PRODUCT_LAYER:
                part.slot_start = 2 + lo
                part.child_slots = t.add(f"{name}.child_slots", fwd[run], sdt)
            else:
                part.block_slots = t.add(f"{name}.block_slots", pos_slot[lo:end], sdt)
                part.block_num_children = t.add(f"{name}.block_num_children", fan_o[lo:end],
                                                np.int32)
                part.child_slots = t.add(f"{name}.child_slots", fwd[run], sdt)
                part.block_param_starts = t.add(f"{name}.block_param_starts",
                                                wstart_o[lo:end], np.int64)
                tail = max(tail, part.max_children)
            run += 1
        layer.num_slots = end - first
        while back < len(bwd_layer) and bwd_layer[back] == li:
            add_partitions(layout, li, bwd, back, sdt, t.decoded)   # after the layer's forward
            back += 1
    layout.num_slots = num_slots
    layout.num_sum_params = sum_start + s_count + tail
    layout.num_input_params = len(input_ids) * width
    layout.max_block_size = 1
    layout.root_group = -1
    layout.root_slot = int(plan.slot[a.roots[0]])
    layout.model_hash = model_hash()
    layout.metadata.update({"reserved_sum_params": str(RESERVED), "sum_params_tail": str(tail),
                            "slot_dtype": np.dtype(sdt).name, "form": "nodes"})
    if not backward:
        layout.metadata[DEFERRED_KEY] = DEFERRED
    np_ = layout.node_placement
    np_.node_slots = t.add("nodes.node_slots", plan.slot, sdt)
    np_.sum_param_start, np_.sum_param_count = sum_start, s_count
    np_.input_param_start, np_.input_param_count = 0, int(layout.num_input_params)
    if t.decoded is not None:
        ctx.analysis[LAYOUT_ARRAYS] = (layout, t.decoded)
    ctx.note(f"{num_slots} slots, {layout.num_sum_params} sum params ({RESERVED} reserved, "
             f"{tail} tail), {layout.num_input_params} input params")
    return layout, True


# The Model's structure hash (sha256 of its 10^7-entry arrays, 0.2-0.3 s at
# 10^6 SDD nodes) runs on a thread beside the layout pass's numpy work, which
# it does not touch: hashlib and most numpy loops release the GIL. False:
# in line (A/B runs).
HASH_BESIDE = True
HASH_BESIDE_MIN_EDGES = 1 << 20     # Models with fewer edges hash in line


def _structure_hash_beside(model: pcir.Model, a: NodeArrays) -> Callable[[], str]:
    """A call that returns ir.structure_hash(model, arrays=a) (`a`: decoded
    from `model`), computed on a thread started now when HASH_BESIDE and
    the arrays are large (a thread costs ~0.1 ms), else in the call; the
    thread's error is raised by the call."""
    if not HASH_BESIDE or len(a.child_ids) < HASH_BESIDE_MIN_EDGES:
        return lambda: ir.structure_hash(model, arrays=a)
    out: dict = {}

    def run() -> None:
        try:
            out["hash"] = ir.structure_hash(model, arrays=a)
        except BaseException as error:          # raised in the caller's thread
            out["error"] = error

    thread = threading.Thread(target=run, name="pcc-structure-hash", daemon=True)
    thread.start()

    def result() -> str:
        thread.join()
        if "error" in out:
            raise out["error"]
        return out["hash"]
    return result



def _edge_slots(plan: NodePlan) -> np.ndarray:
    """The child slot of every edge, the nodes in slot order, each node's
    children in its own order: the forward tables' entries, unpadded."""
    a = plan.a
    return gather_ranges(a.child_ids, a.child_offsets[plan.order], plan.fan_o, through=plan.slot)


def _forward_tables(plan: NodePlan, kid_slot: np.ndarray, sdt) -> list[np.ndarray]:
    """The padded child-slot table of every forward partition, from the
    edges of all nodes in slot order (`_edge_slots`; products pad with
    slot 1, sums 0)."""
    run_len = plan.run_end - plan.run_start
    pad = (plan.layer_kind[plan.run_layer] == PRODUCT).astype(np.int64)   # products: slot 1
    return padded_tables(kid_slot, plan.fan_o, run_len, plan.run_max, pad, sdt)


def _backward(plan: NodePlan, kid_slot: np.ndarray, fwd: list[np.ndarray],
              pos_slot: np.ndarray, fan_o: np.ndarray, sdt) -> BackwardTables:
    """The backward tables of the sum partitions: the same arrays either way
    (WHOLE_EDGES_MAX)."""
    num_slots = len(pos_slot) + 2
    if len(kid_slot) <= WHOLE_EDGES_MAX:
        return backward_tables(*sum_edge_arrays(plan, kid_slot, pos_slot, sdt), num_slots, sdt)
    wstart_o = plan.wstart_o
    return sum_edges([(li, pos_slot[lo:end], fan_o[lo:end], fwd[r], wstart_o[lo:end])
                      for r, (li, lo, end) in enumerate(zip(plan.run_layer.tolist(),
                                                            plan.run_start.tolist(),
                                                            plan.run_end.tolist()))
                      if plan.layer_kind[li] == SUM], num_slots, sdt)


def sum_edge_arrays(plan: NodePlan, kid_slot: np.ndarray, pos_slot: np.ndarray, sdt
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(layer int32, parent slot, child slot, weight index int64) of every
    sum edge in slot order of the parents, each parent's children in order:
    node_backward.sum_edges' arrays, taken from `kid_slot` (`_edge_slots`)
    at the sum positions in whole-array steps."""
    run_len = plan.run_end - plan.run_start
    sum_pos = np.repeat(plan.layer_kind[plan.run_layer] == SUM, run_len)
    fan = plan.fan_o[sum_pos].astype(np.int64, copy=False)
    layers = np.repeat(np.repeat(plan.run_layer, run_len)[sum_pos], fan).astype(np.int32)
    pslots = np.repeat(pos_slot[sum_pos], fan).astype(sdt, copy=False)
    cslots = kid_slot[np.repeat(sum_pos, plan.fan_o)].astype(sdt, copy=False)
    params = np.repeat(plan.wstart_o[sum_pos].astype(np.int64), fan) + segment_ranks(fan)
    return layers, pslots, cslots, params
