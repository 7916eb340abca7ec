"""A vectorised screen of the Layout checker's placement and layer rules.

ir/layout_checker.py checks one placement, layer and partition at a time:
a few small numpy calls per index tensor, ~1,900 placements and ~170
partitions for a 1,896-group HCLT. The screen reads the placements and the
partitions' fields in one pass each, concatenates the index tensors of all
partitions of one role, and tests each range rule with one numpy
expression over them.

Like ir/group_screen.py it only screens: `placements_hold` is True only when
the exact placement rules would pass, and `screen_layers` flags every layer
whose exact rules might fail; the checker runs the exact rules there, so
messages stay theirs. For an unflagged layer it returns the same
(writes, reads) the exact rules would add to the dataflow plan, in the same
order. Numbers beyond SANE (2**52) flag their unit, so no int64 expression
here can overflow.
"""

from __future__ import annotations

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.tensors import INT_DTYPES, from_checked_bytes

SANE = 2 ** 52
# Entries from which an index tensor is range-checked alone, in place.
BIG = 1 << 16
_DISTS = (pcir.CATEGORICAL_DIST, pcir.BERNOULLI_DIST, pcir.GAUSSIAN_DIST)
_PARTS = {pcir.INPUT_LAYER: "input_partitions", pcir.PRODUCT_LAYER: "product_partitions",
          pcir.SUM_LAYER: "sum_partitions"}
_GROUP_KIND = {pcir.INPUT_LAYER: pcir.INPUT, pcir.PRODUCT_LAYER: pcir.PRODUCT,
               pcir.SUM_LAYER: pcir.SUM}


def _sane(*values: np.ndarray) -> bool:
    return all(v.size == 0 or (v.min() > -SANE and v.max() < SANE) for v in values)


def group_fields(model: pcir.Model) -> tuple[np.ndarray, ...] | None:
    """kind, num_nodes, params per node (0 unless input) of every group;
    None when an input's variable is out of range (the exact rules decide)."""
    groups = model.groups
    kind = np.array([g.kind for g in groups], dtype=np.int64)
    node = np.array([g.num_nodes for g in groups], dtype=np.int64)
    inputs = np.flatnonzero(kind == pcir.INPUT)
    pairs = np.array([(groups[i].input.dist, groups[i].input.variable)
                      for i in inputs.tolist()], dtype=np.int64).reshape(-1, 2)
    cats = np.array([v.num_cats for v in model.variables], dtype=np.int64)
    dist, var = pairs[:, 0], pairs[:, 1]
    if len(inputs) and (var.min() < 0 or var.max() >= len(cats)):
        return None
    width = np.zeros(len(kind), dtype=np.int64)
    width[inputs] = np.where(dist == pcir.BERNOULLI_DIST, 1, np.where(
        dist == pcir.GAUSSIAN_DIST, 2, cats[var] if len(cats) else 0))
    return kind, node, width


def placements_hold(layout: pcir.Layout, model: pcir.Model,
                    fields: tuple[np.ndarray, ...] | None) -> np.ndarray | None:
    """slot_start of each group when every placement rule holds, else None.
    `fields`: group_fields(model)."""
    count = len(model.groups)
    places = layout.placements
    if len(places) != count or count == 0 or fields is None:
        return None
    rows = np.array([(p.group, p.slot_start, p.param_start, p.param_count, p.block_size)
                     for p in places], dtype=np.int64)
    group = rows[:, 0]
    if group.min() < 0 or group.max() >= count or \
            np.bincount(group, minlength=count).max() != 1:
        return None
    kind, node, width = fields
    ordered = np.empty_like(rows)
    ordered[group] = rows
    slot, pstart, pcount, bsize = ordered[:, 1], ordered[:, 2], ordered[:, 3], ordered[:, 4]
    if not _sane(slot, pstart, pcount, node, width) or \
            (node.astype(np.float64) * width >= SANE).any():
        return None
    bad = (slot < 2) | (slot > layout.num_slots - node)
    owner = np.arange(count)
    for t in model.ties:
        if not (0 <= t.group < count and 0 <= t.target < count):
            return None
        owner[t.group] = t.target
    params = kind != pcir.PRODUCT
    bad |= params & ((pstart != pstart[owner]) | (pcount != pcount[owner]))
    inputs, sums = kind == pcir.INPUT, kind == pcir.SUM
    bad |= sums & ((bsize < 1) | (node % np.maximum(bsize, 1) != 0))
    lo = np.where(inputs, 0, layout.max_block_size)
    hi = np.where(inputs, layout.num_input_params, layout.num_sum_params)
    need = np.where(inputs, node * width, 1)
    bad |= params & ((pcount < need) | (pstart < lo) | (pstart + pcount > hi))
    bad |= ~np.isin(kind, (pcir.INPUT, pcir.PRODUCT, pcir.SUM))
    return None if bad.any() else slot


class _Role:
    """The index tensors of one role (e.g. "sum child_slots") of every
    partition, with the bounds each entry must respect."""

    def __init__(self):
        self.layers: list[int] = []
        self.arrays: list[np.ndarray] = []
        self.lo: list[int] = []
        self.hi: list[int] = []

    def add(self, layer: int, array: np.ndarray, lo: int, hi: int) -> None:
        self.layers.append(layer)
        self.arrays.append(array.reshape(-1))
        self.lo.append(lo)
        self.hi.append(hi)

    def flag(self, bad: np.ndarray) -> None:
        """Flag the layers with an entry outside its bounds: big tensors by
        their min and max in place, the small ones concatenated."""
        small = []
        for k, a in enumerate(self.arrays):
            if len(a) < BIG:
                small.append(k)
            elif a.min() < self.lo[k] or a.max() >= self.hi[k]:
                bad[self.layers[k]] = True
        if not small:
            return
        sizes = np.array([len(self.arrays[k]) for k in small])
        values = np.concatenate([self.arrays[k] for k in small])
        lo = np.repeat([self.lo[k] for k in small], sizes)
        hi = np.repeat([self.hi[k] for k in small], sizes)
        out = (values < lo) | (values >= hi)
        if out.any():
            owner = np.searchsorted(np.cumsum(sizes), np.flatnonzero(out), side="right")
            bad[np.array([self.layers[k] for k in small])[owner]] = True


class _Layers:
    """One pass over the layers: scalar rules checked in place, index
    tensors collected per role, plan entries per layer."""

    def __init__(self, layout: pcir.Layout, model: pcir.Model | None, slots: np.ndarray | None,
                 fields: tuple | None, table, shapes: dict[str, tuple]):
        self.layout, self.model, self.slots, self.fields = layout, model, slots, fields
        self.table, self.shapes = table, shapes
        count = len(layout.layers)
        self.bad = np.zeros(count, dtype=bool)
        self.roles: dict[str, _Role] = {}
        self.writes: list[list] = [[] for _ in range(count)]
        self.reads: list[list] = [[] for _ in range(count)]
        self.group_ids: list[int] = []                        # every layer's groups
        self.group_layers: list[tuple[int, int, int, int]] = []  # layer, count, lo, hi

    def role(self, name: str) -> _Role:
        return self.roles.setdefault(name, _Role())

    def ints(self, name: str, shape: tuple) -> np.ndarray:
        """The int tensor `name` of `shape` (LookupError when it is not)."""
        entry = self.shapes.get(name) if name else None
        if entry is None or entry[0] not in INT_DTYPES or entry[1] != shape or entry[2] is None:
            raise LookupError(name)
        array = self.table.cache.get(name)
        if array is None:
            array = from_checked_bytes(entry[0], entry[1], entry[2])
            self.table.cache[name] = array
        return array.astype(np.int64, copy=False)

    def layer(self, li: int, layer: pcir.Layer) -> None:
        layout = self.layout
        kind = layer.kind
        field = _PARTS.get(kind)
        lo, hi = layer.slot_start, layer.slot_start + layer.num_slots
        if field is None or layer.num_slots < 0 or lo < 2 or hi > layout.num_slots or \
                abs(lo) >= SANE or abs(hi) >= SANE:
            raise LookupError(li)
        for other in _PARTS.values():
            if other != field and len(getattr(layer, other)):
                raise LookupError(li)
        if kind != pcir.SUM_LAYER and len(layer.sum_backward_partitions):
            raise LookupError(li)
        if self.model is not None:
            ids = layer.groups
            self.group_ids.extend(ids)
            self.group_layers.append((li, len(ids), lo, hi))
        if kind == pcir.INPUT_LAYER:
            for k, part in enumerate(layer.input_partitions):
                self.input_part(li, k, part, lo, hi)
        elif kind == pcir.PRODUCT_LAYER:
            for k, part in enumerate(layer.product_partitions):
                self.product_part(li, k, part, lo, hi)
        else:
            for k, part in enumerate(layer.sum_partitions):
                self.sum_part(li, k, part, lo, hi)
            for k, part in enumerate(layer.sum_backward_partitions):
                self.backward_part(li, k, part, lo, hi)

    def input_part(self, li: int, k: int, part, lo: int, hi: int) -> None:
        start, n, ppn = part.slot_start, part.num_nodes, part.params_per_node
        if n < 0 or start < lo or start + n > hi or part.dist not in _DISTS or ppn < 1:
            raise LookupError(li)
        self.role("vars").add(li, self.ints(part.node_vars, (n,)), 0, self.layout.num_vars)
        self.role("input starts").add(li, self.ints(part.node_param_starts, (n,)), 0,
                                      self.layout.num_input_params - ppn + 1)
        self.writes[li].append((start, n, f"layer {li} input partition {k}"))

    def product_part(self, li: int, k: int, part, lo: int, hi: int) -> None:
        start, n = part.slot_start, part.num_nodes
        if n < 0 or start < lo or start + n > hi:
            raise LookupError(li)
        kids = self.ints(part.child_slots, (n, part.num_children))
        self.role("slots").add(li, kids, 0, self.layout.num_slots)
        what = f"layer {li} product partition {k}"
        self.writes[li].append((start, n, what))
        self.reads[li].append((kids, 1, what))

    def sum_part(self, li: int, k: int, part, lo: int, hi: int) -> None:
        layout = self.layout
        b, nb, width = part.block_size, part.num_blocks, part.max_children
        if not 1 <= b <= max(layout.max_block_size, 1) or nb < 0 or width < 0:
            raise LookupError(li)
        slots = self.ints(part.block_slots, (nb,))
        counts = self.ints(part.block_num_children, (nb,))
        kids = self.ints(part.child_slots, (nb, width))
        starts = self.ints(part.block_param_starts, (nb,))
        self.role("block slots").add(li, slots, lo, hi - b + 1)
        self.role("slots").add(li, kids, 0, layout.num_slots)
        if counts.size and (counts.min() < 0 or counts.max() > width):
            raise LookupError(li)
        used = np.arange(width)[None, :] < counts[:, None]
        if (kids[~used] != 0).any() or (starts < 0).any() or \
                (starts >= layout.num_sum_params - counts * b + 1).any():
            raise LookupError(li)
        what = f"layer {li} sum partition {k}"
        self.writes[li].append((slots, b, what))
        self.reads[li].append((kids[used], 1, what))

    def backward_part(self, li: int, k: int, part, lo: int, hi: int) -> None:
        layout = self.layout
        cb, pb, nb, width = (part.child_block_size, part.parent_block_size, part.num_blocks,
                             part.max_parents)
        top = max(layout.max_block_size, 1)
        if not (1 <= cb <= top and 1 <= pb <= top) or nb < 0 or width < 0:
            raise LookupError(li)
        cslots = self.ints(part.cblock_slots, (nb,))
        counts = self.ints(part.cblock_num_parents, (nb,))
        parents = self.ints(part.parent_slots, (nb, width))
        pstarts = self.ints(part.parent_param_starts, (nb, width))
        self.role("child blocks").add(li, cslots, 0, layout.num_slots - cb + 1)
        if counts.size and (counts.min() < 0 or counts.max() > width) or \
                not _sane(cslots) or (np.diff(np.sort(cslots)) < cb).any():
            raise LookupError(li)
        used = np.arange(width)[None, :] < counts[:, None]
        self.role("parents").add(li, parents[used], lo, hi - pb + 1)
        self.role("parent starts").add(li, pstarts[used], 0, layout.num_sum_params - cb * pb + 1)
        unused = ~used
        if (parents[unused] != 0).any() or (pstarts[unused] != 0).any():
            raise LookupError(li)
        self.reads[li].append((cslots, cb, f"layer {li} backward sum partition {k}"))

    def flag_groups(self) -> None:
        """Listed groups exist, have the layer's kind, lie inside it."""
        if not self.group_ids or self.model is None:
            return
        per_layer = np.array(self.group_layers, dtype=np.int64)
        layer, lo, hi = (np.repeat(per_layer[:, k], per_layer[:, 1]) for k in (0, 2, 3))
        gid = np.array(self.group_ids, dtype=np.int64)
        count = len(self.model.groups)
        fields = self.fields
        inside = (gid >= 0) & (gid < count)
        if fields is None or self.slots is None or not inside.all():
            self.bad[layer] = True
            return
        kind, node, _ = fields
        want = np.array([_GROUP_KIND.get(self.layout.layers[li].kind, -1)
                         for li in range(len(self.layout.layers))])[layer]
        start = self.slots[gid]
        self.bad[layer[(kind[gid] != want) | (start < lo) | (start > hi - node[gid])]] = True


def screen_layers(layout: pcir.Layout, model: pcir.Model | None, slots: np.ndarray | None,
                  fields: tuple | None, table, shapes: dict[str, tuple]
                  ) -> tuple[np.ndarray, list, list]:
    """(flagged, writes, reads): flagged[li] unless every rule of layer li
    provably holds; writes[li] / reads[li]: (starts, lengths) the exact rules
    would add to the dataflow plan, in their order. `slots`: slot_start of
    each group (from placements_hold), None without a model or when the
    placements failed; `fields`: group_fields(model))."""
    screen = _Layers(layout, model, slots, fields, table, shapes)
    header = (layout.num_slots, layout.num_sum_params, layout.num_input_params,
              layout.num_vars)
    if not all(0 <= v < SANE for v in header):
        screen.bad[:] = True
        return screen.bad, screen.writes, screen.reads
    for li, layer in enumerate(layout.layers):
        try:
            screen.layer(li, layer)
        except LookupError:
            screen.bad[li] = True
    for role in screen.roles.values():
        role.flag(screen.bad)
    screen.flag_groups()
    return screen.bad, screen.writes, screen.reads
