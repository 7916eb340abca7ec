"""Internal consistency of a Layout, for tests and for backends to call.

`validate_layout(layout, model)` proves what a kernel silently relies on:
every index is in range, every slot is written by exactly one partition
before any partition reads it, reserved slots and parameters are never
written, padding uses the reserved slots, and (deep=True) the backward plan
of each sum layer lists exactly the (child, parent, weight) triples of its
forward plan. Violations raise CheckError naming the rule, layer and
partition. `check_model` runs ir.check when the checker exists.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.errors import CheckError
from pccompiler.ir import pcir


def check_model(model: pcir.Model) -> bool:
    """ir.check(model) if the checker is available; False if it is not."""
    try:
        from pccompiler.ir.checker import check
    except ImportError:
        return False
    check(model)
    return True


def _fail(rule: str, where: str, message: str):
    raise CheckError(rule, f"{where}: {message}")


def _arr(table, name: str, shape: tuple, where: str) -> np.ndarray:
    if name not in table:
        _fail("layout-tensor", where, f"tensor {name!r} missing")
    a = np.asarray(table[name], dtype=np.int64)
    if a.shape != shape:
        _fail("layout-tensor", where, f"tensor {name!r} has shape {a.shape}, expected {shape}")
    return a


def _reads(slots: np.ndarray, written_at: np.ndarray, li: int, where: str) -> None:
    if slots.size == 0:
        return
    if slots.min() < 0 or slots.max() >= len(written_at):
        _fail("slot-range", where, f"slot {int(slots.max())} / {int(slots.min())} out of range")
    bad = written_at[slots] >= li
    if bad.any():
        s = int(slots[bad][0])
        _fail("read-before-write", where, f"reads slot {s} written by layer {written_at[s]}")


def validate_layout(layout: pcir.Layout, model: pcir.Model | None = None,
                    deep: bool = True) -> None:
    """Raise CheckError unless `layout` is internally consistent (and matches `model`)."""
    table = ir.tensor_table(layout)
    n_slots, n_sum, n_in = int(layout.num_slots), int(layout.num_sum_params), \
        int(layout.num_input_params)
    written_at = np.full(n_slots, np.iinfo(np.int64).max, dtype=np.int64)
    written_at[:2] = -1
    writes = np.zeros(n_slots, dtype=np.int64)
    reserved = int(layout.metadata.get("reserved_sum_params", layout.max_block_size or 1))
    cursor = 2
    for li, layer in enumerate(layout.layers):
        lw = f"layer {li}"
        if layer.slot_start != cursor:
            _fail("layer-slots", lw, f"starts at {layer.slot_start}, expected {cursor}")
        cursor = layer.slot_start + layer.num_slots
        lo, hi = layer.slot_start, cursor

        def write(slots, where):
            if slots.size and (slots.min() < lo or slots.max() >= hi):
                _fail("write-range", where, f"writes outside the layer's slots [{lo}, {hi})")
            np.add.at(writes, slots, 1)
            if slots.size and writes[slots].max() > 1:
                s = int(slots[writes[slots] > 1][0])
                _fail("one-writer", where, f"slot {s} is written twice")
            written_at[slots] = li
        for pi, p in enumerate(layer.input_partitions):
            w, n = f"{lw} input partition {pi}", int(p.num_nodes)
            write(p.slot_start + np.arange(n), w)
            vars_ = _arr(table, p.node_vars, (n,), w)
            starts = _arr(table, p.node_param_starts, (n,), w)
            if n and (vars_.min() < 0 or vars_.max() >= layout.num_vars):
                _fail("var-range", w, "node variable out of range")
            if n and (starts.min() < 0 or starts.max() + p.params_per_node > n_in):
                _fail("param-range", w, "input parameter row out of range")
        for pi, p in enumerate(layer.product_partitions):
            w, n = f"{lw} product partition {pi}", int(p.num_nodes)
            _reads(_arr(table, p.child_slots, (n, p.num_children), w).ravel(), written_at, li, w)
            write(p.slot_start + np.arange(n), w)
        fwd_triples = []
        for pi, p in enumerate(layer.sum_partitions):
            w, nb, bs, km = f"{lw} sum partition {pi}", int(p.num_blocks), int(p.block_size), \
                int(p.max_children)
            slots = _arr(table, p.block_slots, (nb,), w)
            kids = _arr(table, p.block_num_children, (nb,), w)
            child = _arr(table, p.child_slots, (nb, km), w)
            starts = _arr(table, p.block_param_starts, (nb,), w)
            real = np.arange(km)[None, :] < kids[:, None]
            if nb and (kids.min() < 1 or kids.max() > km):
                _fail("fan-in", w, "block_num_children outside [1, max_children]")
            if (child[~real] != 0).any():
                _fail("padding", w, "padded children must be slot 0")
            _reads(child[real], written_at, li, w)
            if (child[real] < 2).any():
                _fail("padding", w, "a real child reads a reserved slot")
            if nb and (starts.min() < reserved or starts.max() + km * bs > n_sum):
                _fail("param-range", w, "weights outside (reserved, num_sum_params]")
            parents = (slots[:, None] + np.arange(bs)[None, :]).ravel()
            write(parents, w)
            if deep:
                b, k = np.nonzero(real)
                i = np.arange(bs)
                fwd_triples.append(np.stack(np.broadcast_arrays(
                    child[b, k][:, None], slots[b][:, None] + i, starts[b][:, None]
                    + k[:, None] * bs + i), -1).reshape(-1, 3))
        bwd_triples = []
        for pi, p in enumerate(layer.sum_backward_partitions):
            w, nb, mp = f"{lw} backward partition {pi}", int(p.num_blocks), int(p.max_parents)
            cbs, pbs = int(p.child_block_size), int(p.parent_block_size)
            cslots = _arr(table, p.cblock_slots, (nb,), w)
            npar = _arr(table, p.cblock_num_parents, (nb,), w)
            pslots = _arr(table, p.parent_slots, (nb, mp), w)
            pstarts = _arr(table, p.parent_param_starts, (nb, mp), w)
            if len(np.unique(cslots)) != nb:
                _fail("one-writer", w, "a child block appears twice")
            real = np.arange(mp)[None, :] < npar[:, None]
            if (pslots[~real] != 0).any() or (pstarts[~real] != 0).any():
                _fail("padding", w, "padded parents must be slot 0 / param 0")
            if cbs * pbs > reserved:
                _fail("padding", w, "reserved parameter region smaller than a block pair")
            _reads((cslots[:, None] + np.arange(cbs)).ravel(), written_at, li, w)
            if real.any() and ((written_at[pslots[real]] != li).any()
                               or pstarts[real].max() + cbs * pbs > n_sum):
                _fail("parent-range", w, "parent not in this layer or weights out of range")
            if deep:
                c, l = np.nonzero(real)
                j = np.arange(cbs)[:, None]
                i = np.arange(pbs)[None, :]
                trip = np.stack(np.broadcast_arrays(
                    cslots[c][:, None, None] + j, pslots[c, l][:, None, None] + i,
                    pstarts[c, l][:, None, None] + j * pbs + i), -1)
                bwd_triples.append(trip.reshape(-1, 3))
        if deep and (fwd_triples or bwd_triples):
            f = np.unique(np.concatenate(fwd_triples or [np.zeros((0, 3), np.int64)]), axis=0)
            b = np.unique(np.concatenate(bwd_triples or [np.zeros((0, 3), np.int64)]), axis=0)
            if f.shape != b.shape or not np.array_equal(f, b):
                _fail("backward-plan", lw, f"backward plan has {len(b)} (child, parent, weight) "
                      f"triples, forward {len(f)}; they differ")
    if cursor != n_slots:
        _fail("layer-slots", "layout", f"layers end at slot {cursor}, num_slots is {n_slots}")
    if (writes[:2] != 0).any() or (writes[2:] != 1).any():
        s = int(np.flatnonzero(writes[2:] != 1)[0]) + 2 if (writes[2:] != 1).any() else 0
        _fail("one-writer", "layout", f"slot {s} is written {writes[s]} times")
    if not 2 <= layout.root_slot < n_slots:
        _fail("root", "layout", "root slot out of range")
    if model is not None:
        _match_model(layout, model)


def _match_model(layout: pcir.Layout, model: pcir.Model) -> None:
    if layout.model_hash and layout.model_hash != ir.structure_hash(model):
        _fail("model-hash", "layout", "model_hash differs from ir.structure_hash(model)")
    if len(layout.placements) != len(model.groups):
        _fail("placements", "layout", f"{len(layout.placements)} placements for "
              f"{len(model.groups)} groups")
    owner = ir.tie_targets(model)
    for p in layout.placements:
        g = model.groups[p.group]
        if p.slot_start < 2 or p.slot_start + g.num_nodes > layout.num_slots:
            _fail("placements", f"group {g.id}", "slot range out of the buffer")
        if owner[g.id] != g.id:
            q = layout.placements[owner[g.id]]
            if (q.param_start, q.param_count) != (p.param_start, p.param_count):
                _fail("tie-params", f"group {g.id}", "tied group does not share its "
                      "owner's parameters")
