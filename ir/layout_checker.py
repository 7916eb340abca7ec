"""`ir.check_layout(layout, model)`: the invariants of a pcir.Layout.

Rules (names of the CheckErrors): "ir-version", "tensor-*", "layout-header",
"model-hash", "placement", "slot-range", "param-range", "layer-kind",
"index-range", "padding", "slot-writers" (no slot has two writers),
"read-before-write" (every slot a layer reads is 0, 1, or written by an
earlier layer), "flow-writers" (child blocks of a backward partition are
disjoint), "layout-size" (header buffer sizes justified by the layers),
"root". With `deep=True` the rules of ir/layout_rules_deep.py run too
("layer-slots", "fan-in", "backward-plan", stricter "padding",
"param-range" and "slot-writers").

Reads are checked against the sorted list of written intervals with
`searchsorted`; nothing is ever allocated per slot, so a layout that claims
10**12 slots costs nothing. Pass `model=None` to check only what the layout
says about itself (no hash, placements or group kinds).
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import CheckError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.checker import (_Tensors, _first_bad, _run, check_tensor_bytes,
                                   check_version)
from pccompiler.ir.helpers import params_per_node, structure_hash
from pccompiler.ir.layout_rules_deep import check_layer_tiling, check_sum_layer
from pccompiler.ir.nodes import concat_ranges
from pccompiler.ir.layout_screen import group_fields, placements_hold, screen_layers
from pccompiler.ir.tensors import INT_DTYPES

MAX_SLOTS = 2 ** 48
# Largest block size and parameters per input node a layout may claim: with
# them, every buffer a backend allocates from the header (values
# [num_slots, B], sum_params, input_params) is bounded by the index tensors
# actually present in the file (rule "layout-size").
MAX_BLOCK_SIZE = 2 ** 12
MAX_PARAMS_PER_NODE = 2 ** 24
_LAYER_GROUP_KIND = {pcir.INPUT_LAYER: pcir.INPUT, pcir.PRODUCT_LAYER: pcir.PRODUCT,
                     pcir.SUM_LAYER: pcir.SUM}


def _fail(rule: str, message: str, values: object = None) -> None:
    raise CheckError(rule, message, None, "", values)


class _Plan:
    """Writers (slot intervals with their layer) and reads gathered per layer.
    Each entry is (starts int64 [k], lengths, layer, what); lengths is an int
    (the same for every interval, the usual case) or an int64 [k] array."""

    def __init__(self):
        self.writers: list[tuple[np.ndarray, np.ndarray | int, int, str]] = []
        self.reads: list[tuple[np.ndarray, np.ndarray | int, int, str]] = []

    def write(self, starts, lengths, layer: int, what: str) -> None:
        self.writers.append((*_intervals(starts, lengths), layer, what))

    def read(self, starts, lengths, layer: int, what: str) -> None:
        self.reads.append((*_intervals(starts, lengths), layer, what))


def _intervals(starts, lengths) -> tuple[np.ndarray, np.ndarray | int]:
    """(starts int64 [k], lengths): an int kept as an int, else int64 [k]."""
    starts = np.asarray(starts, np.int64).reshape(-1)
    if isinstance(lengths, (int, np.integer)):
        return starts, int(lengths)
    return starts, np.broadcast_to(np.asarray(lengths, np.int64), starts.shape)


def _lengths(entries: list, sizes: np.ndarray) -> np.ndarray:
    """The per-interval lengths of plan entries, concatenated."""
    if all(isinstance(e[1], int) for e in entries):
        return np.repeat(np.array([e[1] for e in entries], dtype=np.int64), sizes)
    return np.concatenate([np.broadcast_to(np.asarray(e[1], np.int64), len(e[0]))
                           for e in entries])


def _ints(table: _Tensors, name: str, what: str, shape: tuple) -> np.ndarray:
    array = table.get(name, what, dtypes=INT_DTYPES)
    if tuple(array.shape) != tuple(shape):
        _fail("tensor-shape", f"{what} {name!r} has shape {list(array.shape)}, expected "
              f"{list(shape)}")
    return array.astype(np.int64, copy=False)


def _in_range(values: np.ndarray, lo: int, hi: int, what: str) -> None:
    bad = (values < lo) | (values >= hi)
    if bad.any():
        i = _first_bad(bad)
        _fail("index-range", f"{what}: entry {i} = {values.reshape(-1)[i]} is outside "
              f"[{lo}, {hi})", i)


def _check_header(layout: pcir.Layout, model: pcir.Model | None,
                  model_hash: str | None = None) -> None:
    if not 2 <= layout.num_slots < MAX_SLOTS:
        _fail("layout-header", f"num_slots {layout.num_slots} is not in [2, 2**48)")
    if not 0 <= layout.max_block_size <= MAX_BLOCK_SIZE:
        _fail("layout-header", f"max_block_size {layout.max_block_size} is not in "
              f"[0, {MAX_BLOCK_SIZE}]")
    if layout.max_block_size < 0 or layout.num_input_params < 0 or \
            layout.num_sum_params < layout.max_block_size:
        _fail("layout-header", f"num_sum_params {layout.num_sum_params} must hold the "
              f"{layout.max_block_size} reserved zeros; num_input_params "
              f"{layout.num_input_params} must be >= 0")
    if model is not None:
        if layout.num_vars != len(model.variables):
            _fail("layout-header", f"num_vars {layout.num_vars} != the model's "
                  f"{len(model.variables)} variables")
        expected = model_hash or structure_hash(model)
        if layout.model_hash != expected:
            _fail("model-hash", "the layout was made from another model structure "
                  f"(model_hash {layout.model_hash[:12]}... != {expected[:12]}...)")


def _placements(layout: pcir.Layout, model: pcir.Model) -> dict[int, pcir.GroupPlacement]:
    placed: dict[int, pcir.GroupPlacement] = {}
    for p in layout.placements:
        if not 0 <= p.group < len(model.groups):
            _fail("placement", f"placement of group {p.group}, which does not exist", p.group)
        if p.group in placed:
            _fail("placement", f"group {p.group} is placed twice", p.group)
        placed[p.group] = p
    missing = [g.id for g in model.groups if g.id not in placed]
    if missing:
        _fail("placement", f"groups {missing[:5]} have no placement", missing)
    owner = {g.id: g.id for g in model.groups}
    owner.update({t.group: t.target for t in model.ties})
    for g in model.groups:
        p = placed[g.id]
        where = f"placement of group {g.id}"
        if not 2 <= p.slot_start <= layout.num_slots - g.num_nodes:
            _fail("slot-range", f"{where}: slots [{p.slot_start}, +{g.num_nodes}) are not "
                  f"inside [2, {layout.num_slots})", g.id)
        if g.kind == pcir.PRODUCT:
            continue
        target = placed[owner[g.id]]
        if (p.param_start, p.param_count) != (target.param_start, target.param_count):
            _fail("param-range", f"{where}: parameters {p.param_start}+{p.param_count} differ "
                  f"from its tie target {owner[g.id]}'s", g.id)
        if g.kind == pcir.INPUT:
            width = params_per_node(g.input.dist, model.variables[g.input.variable].num_cats)
            lo, hi, need = 0, layout.num_input_params, g.num_nodes * width
        else:
            if p.block_size < 1 or g.num_nodes % p.block_size:
                _fail("param-range", f"{where}: block size {p.block_size} does not divide "
                      f"num_nodes {g.num_nodes}", g.id)
            lo, hi, need = layout.max_block_size, layout.num_sum_params, 1
        if p.param_count < need or p.param_start < lo or p.param_start + p.param_count > hi:
            _fail("param-range", f"{where}: parameters [{p.param_start}, +{p.param_count}) "
                  f"are not inside [{lo}, {hi}) or hold fewer than {need}", g.id)
    return placed


def _node_placement(layout: pcir.Layout, model: pcir.Model, table: _Tensors) -> None:
    """A node-form Model's NodePlacement: one slot per node inside the
    slots, and parameter ranges that hold the Model's weights and rows."""
    if len(layout.placements) or not layout.HasField("node_placement"):
        _fail("placement", "a node-form Model needs a Layout with a node_placement and no "
              "group placements")
    p = layout.node_placement
    n = int(model.nodes.num_nodes)
    slots = _ints(table, p.node_slots, "node_slots", (n,))
    _in_range(slots, 2, layout.num_slots, "node_slots")
    if len(np.unique(slots)) != n:
        _fail("placement", "node_slots gives two nodes the same slot")
    dims = {t.name: list(t.dims) for t in model.tensors}
    need_sum = int(np.prod(dims.get(model.nodes.sum_weights, [0])))
    need_in = int(np.prod(dims.get(model.nodes.input_params, [0])))
    if p.sum_param_count != need_sum or p.sum_param_start < layout.max_block_size or \
            p.sum_param_start + p.sum_param_count > layout.num_sum_params:
        _fail("param-range", f"node sum parameters [{p.sum_param_start}, +{p.sum_param_count})"
              f" are not the model's {need_sum} weights inside [{layout.max_block_size}, "
              f"{layout.num_sum_params})")
    if p.input_param_count != need_in or p.input_param_start < 0 or \
            p.input_param_start + p.input_param_count > layout.num_input_params:
        _fail("param-range", f"node input parameters [{p.input_param_start}, "
              f"+{p.input_param_count}) are not the model's {need_in} inside "
              f"[0, {layout.num_input_params})")


def _check_layer(layout: pcir.Layout, li: int, layer: pcir.Layer, model: pcir.Model | None,
                 placed: dict, table: _Tensors, plan: _Plan) -> None:
    name = f"layer {li}"
    if layer.kind not in _LAYER_GROUP_KIND:
        _fail("layer-kind", f"{name} has no kind")
    lo, hi = layer.slot_start, layer.slot_start + layer.num_slots
    if layer.num_slots < 0 or lo < 2 or hi > layout.num_slots:
        _fail("slot-range", f"{name} writes slots [{lo}, {hi}), not inside [2, "
              f"{layout.num_slots})")
    expected = {pcir.INPUT_LAYER: "input_partitions", pcir.PRODUCT_LAYER: "product_partitions",
                pcir.SUM_LAYER: "sum_partitions"}[layer.kind]
    for field in ("input_partitions", "product_partitions", "sum_partitions"):
        if field != expected and len(getattr(layer, field)):
            _fail("layer-kind", f"{name} is a {pcir.LayerKind.Name(layer.kind)} but has {field}")
    if layer.kind != pcir.SUM_LAYER and len(layer.sum_backward_partitions):
        _fail("layer-kind", f"{name} has backward sum partitions but is no sum layer")
    if model is not None:
        for gid in layer.groups:
            if not 0 <= gid < len(model.groups) or \
                    model.groups[gid].kind != _LAYER_GROUP_KIND[layer.kind]:
                _fail("layer-kind", f"{name} lists group {gid}, which is not a "
                      f"{pcir.LayerKind.Name(layer.kind)} group of the model", gid)
            p = placed.get(gid)
            if p is not None and not lo <= p.slot_start <= hi - model.groups[gid].num_nodes:
                _fail("slot-range", f"{name} lists group {gid}, placed outside the layer")

    def inside(start, count, what):
        if count < 0 or start < lo or start + count > hi:
            _fail("slot-range", f"{name} {what}: slots [{start}, +{count}) are outside the "
                  f"layer's [{lo}, {hi})")

    for k, part in enumerate(layer.input_partitions):
        what = f"{name} input partition {k}"
        inside(part.slot_start, part.num_nodes, f"input partition {k}")
        if part.dist not in (pcir.CATEGORICAL_DIST, pcir.BERNOULLI_DIST, pcir.GAUSSIAN_DIST) \
                or part.params_per_node < 1:
            _fail("layer-kind", f"{what}: no distribution or params_per_node < 1")
        node_vars = _ints(table, part.node_vars, f"{what} node_vars", (part.num_nodes,))
        _in_range(node_vars, 0, layout.num_vars, f"{what} node_vars")
        starts = _ints(table, part.node_param_starts, f"{what} node_param_starts",
                       (part.num_nodes,))
        _in_range(starts, 0, layout.num_input_params - part.params_per_node + 1,
                  f"{what} node_param_starts")
        plan.write(part.slot_start, part.num_nodes, li, what)
    for k, part in enumerate(layer.product_partitions):
        what = f"{name} product partition {k}"
        inside(part.slot_start, part.num_nodes, f"product partition {k}")
        kids = _ints(table, part.child_slots, f"{what} child_slots",
                     (part.num_nodes, part.num_children))
        _in_range(kids, 0, layout.num_slots, f"{what} child_slots")
        plan.write(part.slot_start, part.num_nodes, li, what)
        plan.read(kids, 1, li, what)
    for k, part in enumerate(layer.sum_partitions):
        what = f"{name} sum partition {k}"
        b, nb, width = part.block_size, part.num_blocks, part.max_children
        if not 1 <= b <= max(layout.max_block_size, 1) or nb < 0 or width < 0:
            _fail("layout-header", f"{what}: block size {b} not in [1, max_block_size "
                  f"{layout.max_block_size}] or negative counts")
        slots = _ints(table, part.block_slots, f"{what} block_slots", (nb,))
        _in_range(slots, lo, hi - b + 1, f"{what} block_slots")
        counts = _ints(table, part.block_num_children, f"{what} block_num_children", (nb,))
        _in_range(counts, 0, width + 1, f"{what} block_num_children")
        kids = _ints(table, part.child_slots, f"{what} child_slots", (nb, width))
        _in_range(kids, 0, layout.num_slots, f"{what} child_slots")
        used = np.arange(width)[None, :] < counts[:, None]
        if (kids[~used] != 0).any():
            _fail("padding", f"{what}: child_slots padding must be slot 0")
        starts = _ints(table, part.block_param_starts, f"{what} block_param_starts", (nb,))
        _in_range(starts, 0, layout.num_sum_params - counts * b + 1,
                  f"{what} block_param_starts")
        plan.write(slots, b, li, what)
        plan.read(kids[used], 1, li, what)
    for k, part in enumerate(layer.sum_backward_partitions):
        what = f"{name} backward sum partition {k}"
        cb, pb, nb, width = (part.child_block_size, part.parent_block_size, part.num_blocks,
                             part.max_parents)
        if not (1 <= cb <= max(layout.max_block_size, 1) and 1 <= pb <= max(
                layout.max_block_size, 1)) or nb < 0 or width < 0:
            _fail("layout-header", f"{what}: block sizes {cb}/{pb} not in [1, max_block_size "
                  f"{layout.max_block_size}] or negative counts")
        cslots = _ints(table, part.cblock_slots, f"{what} cblock_slots", (nb,))
        _in_range(cslots, 0, layout.num_slots - cb + 1, f"{what} cblock_slots")
        order = np.sort(cslots)
        if (np.diff(order) < cb).any():
            _fail("flow-writers", f"{what}: two child blocks overlap (flows would have two "
                  "writers)")
        counts = _ints(table, part.cblock_num_parents, f"{what} cblock_num_parents", (nb,))
        _in_range(counts, 0, width + 1, f"{what} cblock_num_parents")
        parents = _ints(table, part.parent_slots, f"{what} parent_slots", (nb, width))
        pstarts = _ints(table, part.parent_param_starts, f"{what} parent_param_starts",
                        (nb, width))
        used = np.arange(width)[None, :] < counts[:, None]
        _in_range(parents[used], lo, hi - pb + 1, f"{what} parent_slots")
        _in_range(pstarts[used], 0, layout.num_sum_params - cb * pb + 1,
                  f"{what} parent_param_starts")
        if (parents[~used] != 0).any() or (pstarts[~used] != 0).any():
            _fail("padding", f"{what}: padding must be slot 0 and param 0")
        plan.read(cslots, cb, li, what)


def _check_sizes(layout: pcir.Layout, written_end: int) -> None:
    """The header's buffer sizes are justified by what the layers hold.

    A backend allocates values [num_slots, B], sum_params [num_sum_params]
    and input_params [num_input_params] from the header, so a hostile file
    claiming 10**12 slots must be refused here, not by an out-of-memory
    crash. Bounds: slots end where the last written interval ends; sum
    params fit the reserved zeros, every block's (padded) children and a
    tail; input params fit num_nodes * params_per_node of the partitions.
    """
    if layout.num_slots > written_end:
        _fail("layout-size", f"num_slots {layout.num_slots}, but the layers write only slots "
              f"below {written_end}")
    sum_budget = layout.max_block_size ** 2
    input_budget = 0
    for layer in layout.layers:
        for part in layer.sum_partitions:
            sum_budget += (part.num_blocks + 1) * part.max_children * part.block_size
        for part in layer.sum_backward_partitions:
            sum_budget += part.child_block_size * part.parent_block_size
        for part in layer.input_partitions:
            if part.params_per_node > MAX_PARAMS_PER_NODE:
                _fail("layout-size", f"an input partition claims {part.params_per_node} "
                      f"parameters per node (at most {MAX_PARAMS_PER_NODE})")
            input_budget += part.num_nodes * part.params_per_node
    if layout.num_sum_params > sum_budget:
        _fail("layout-size", f"num_sum_params {layout.num_sum_params} exceeds what the sum "
              f"partitions can read ({sum_budget})")
    if layout.num_input_params > input_budget:
        _fail("layout-size", f"num_input_params {layout.num_input_params} exceeds what the "
              f"input partitions hold ({input_budget})")


def _check_dataflow(plan: _Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """No slot written twice; every read written by an earlier layer.

    The reserved slots 0 and 1 count as written before the first layer.
    """
    plan.writers.insert(0, (np.array([0]), 2, -1, "the reserved slots 0, 1"))
    counts = np.array([len(w[0]) for w in plan.writers])
    ws = np.concatenate([w[0] for w in plan.writers])
    wl = np.repeat(np.array([w[2] for w in plan.writers]), counts)
    we = ws + _lengths(plan.writers, counts)
    who = np.repeat(np.arange(len(plan.writers)), counts)
    order = np.argsort(ws, kind="stable")
    ws, we, wl, who = ws[order], we[order], wl[order], who[order]
    keep = we > ws
    ws, we, wl, who = ws[keep], we[keep], wl[keep], who[keep]
    clash = ws[1:] < we[:-1]
    if clash.any():
        i = _first_bad(clash)
        _fail("slot-writers", f"slot {ws[i + 1]} is written by {plan.writers[who[i]][3]} "
              f"and by {plan.writers[who[i + 1]][3]}", int(ws[i + 1]))
    if not plan.reads:
        return ws, we, wl
    # gaps[j] = 1 if interval j+1 does not start where interval j ends
    gaps = np.concatenate([[0], np.cumsum(ws[1:] != we[:-1])])
    owner = _slot_owners(ws, we, wl, sum(len(r[0]) for r in plan.reads))
    for starts, lengths, layer, what in plan.reads:
        if not len(starts):
            continue
        if owner is not None and isinstance(lengths, int) and lengths == 1:
            ok = _slots_written(owner, starts, layer)
        else:
            ok = _spans_written(ws, we, wl, gaps, starts, starts + lengths, layer)
        if not ok.all():
            i = _first_bad(~ok)
            e = starts[i] + (lengths if isinstance(lengths, int) else lengths[i])
            _fail("read-before-write", f"{what} reads slots [{starts[i]}, {e}), not all "
                  f"written by an earlier layer", int(starts[i]))
    return ws, we, wl


def _slot_owners(ws: np.ndarray, we: np.ndarray, wl: np.ndarray, reads: int
                 ) -> np.ndarray | None:
    """slot -> layer of its writer (int32 max: unwritten), for one-slot
    reads, when the slots are few next to the `reads` entries actually in
    the file (at most 4 per read, never a claimed count); else None."""
    end = int(we[-1]) if len(we) else 0
    if end > 4 * reads + (1 << 16):
        return None
    owner = np.full(end, np.iinfo(np.int32).max, dtype=np.int32)
    lengths = we - ws
    owner[concat_ranges(ws, lengths)] = np.repeat(wl, lengths)
    return owner


def _slots_written(owner: np.ndarray, slots: np.ndarray, layer: int) -> np.ndarray:
    """Per one-slot read: written by a layer before `layer`?"""
    if slots.min() >= 0 and slots.max() < len(owner):
        return owner[slots] < layer
    inside = (slots >= 0) & (slots < len(owner))
    return inside & (owner[np.where(inside, slots, 0)] < layer)


def _spans_written(ws: np.ndarray, we: np.ndarray, wl: np.ndarray, gaps: np.ndarray,
                   s: np.ndarray, e: np.ndarray, layer: int) -> np.ndarray:
    """Per read [s, e): every slot written by a layer before `layer`?
    Writers are the sorted disjoint intervals [ws, we) of layers wl; a read
    finds its first and last interval by binary search."""
    i0 = np.searchsorted(ws, s, side="right") - 1
    i1 = np.searchsorted(ws, e - 1, side="right") - 1
    i0c, i1c = np.maximum(i0, 0), np.maximum(i1, 0)
    ok = (i0 >= 0) & (s < we[i0c]) & (e <= we[i1c]) & (gaps[i1c] == gaps[i0c])
    bounds = np.stack([i0c, i1c + 1], axis=1).reshape(-1)
    latest = np.maximum.reduceat(np.append(wl, -1), bounds)[::2]   # newest writer in the span
    return ok & (latest < layer)


def check_layout(layout: pcir.Layout, model: pcir.Model | None = None,
                 collect: bool = False, deep: bool = False,
                 model_hash: str | None = None) -> list[CheckError]:
    """Check the invariants of `layout` (and its agreement with `model`).
    `model_hash`: `structure_hash(model)` when the caller has it already
    (the .pcc reader), so it is not computed twice.

    Raises the first CheckError, or with `collect=True` returns them all
    (one per unit: header, placements, each layer, dataflow, root).
    `deep=True` adds the rules of ir/layout_rules_deep.py (layer tiling and
    holes, fan-in, the backward plan against the forward plan; one unit per
    sum layer) once the basic rules hold.
    """
    errors: list[CheckError] | None = [] if collect else None
    _run(lambda: check_version(layout.ir_version, "layout"), errors)
    shapes: dict[str, tuple] = {}
    tensors_ok = _run(lambda: check_tensor_bytes(layout.tensors, "layout", shapes=shapes),
                      errors)
    header_ok = _run(lambda: _check_header(layout, model, model_hash), errors)
    table = _Tensors(layout.tensors)
    if not tensors_ok:
        table.protos = {}
    placed: dict[int, pcir.GroupPlacement] = {}
    node_form = model is not None and model.HasField("nodes")
    slots = fields = None     # slot_start per group once the placement screen passed
    if model is not None and not node_form:
        fields = group_fields(model)
        slots = placements_hold(layout, model, fields) if header_ok else None
    if slots is not None:
        placed.update((p.group, p) for p in layout.placements)
    elif model is not None and header_ok:
        _run(lambda: (_node_placement(layout, model, table) if node_form
                      else placed.update(_placements(layout, model))), errors)
    plan = _Plan()
    layers_ok = header_ok
    flagged, writes, reads = screen_layers(layout, model, slots, fields, table, shapes) \
        if tensors_ok else (np.ones(len(layout.layers), dtype=bool), [], [])
    for li, layer in enumerate(layout.layers):
        if flagged[li]:     # the exact rules word the message
            layers_ok &= _run(lambda li=li, layer=layer: _check_layer(
                layout, li, layer, model, placed, table, plan), errors)
            continue
        for starts, lengths, what in writes[li]:
            plan.write(starts, lengths, li, what)
        for starts, lengths, what in reads[li]:
            plan.read(starts, lengths, li, what)
    if layers_ok:
        flow: list = []
        if _run(lambda: flow.append(_check_dataflow(plan)), errors) and \
                _run(lambda: _check_sizes(layout, int(flow[0][1].max())), errors) and deep:
            _run(lambda: check_layer_tiling(layout, flow[0][0], flow[0][1]), errors)
            for li, layer in enumerate(layout.layers):
                if layer.kind == pcir.SUM_LAYER:
                    _run(lambda li=li, layer=layer: check_sum_layer(layout, li, layer, table),
                         errors)

    def root_rules():
        if node_form:
            slots = _ints(table, layout.node_placement.node_slots, "node_slots",
                          (int(model.nodes.num_nodes),))
            if model.nodes.roots and layout.root_slot != slots[model.nodes.roots[0]]:
                _fail("root", f"root slot {layout.root_slot} is not the slot "
                      f"{int(slots[model.nodes.roots[0]])} of root node {model.nodes.roots[0]}")
        elif model is not None:
            p = placed.get(layout.root_group)
            if p is None:
                _fail("root", f"root group {layout.root_group} has no placement")
            n = model.groups[layout.root_group].num_nodes
            if not p.slot_start <= layout.root_slot < p.slot_start + n:
                _fail("root", f"root slot {layout.root_slot} is not a node of root group "
                      f"{layout.root_group} (slots {p.slot_start}..{p.slot_start + n - 1})")
        elif not 2 <= layout.root_slot < layout.num_slots:
            _fail("root", f"root slot {layout.root_slot} is outside [2, {layout.num_slots})")
    if header_ok:
        _run(root_rules, errors)
    return errors or []
