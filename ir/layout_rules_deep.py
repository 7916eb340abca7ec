"""The deep Layout rules behind `ir.check_layout(..., deep=True)`.

They prove what a kernel silently relies on beyond index ranges and the
dataflow order that ir/layout_checker.py checks:

  "layer-slots"    layers tile [2, num_slots) in order, without gaps;
  "slot-writers"   every slot of [2, num_slots) has a writer (no hole);
  "fan-in"         every forward sum block has 1..max_children children;
  "padding"        real sum children never read the reserved slots 0, 1, and
                   the reserved zero weights hold a backward block pair;
  "param-range"    forward sum weights, padded rows included, lie in
                   [reserved_sum_params, num_sum_params);
  "backward-plan"  the backward partitions of each sum layer list exactly the
                   (child slot, parent slot, weight) triples of its forward
                   partitions.

They run only on a layout that passed the basic rules (indices in range,
shapes right, one writer per slot), so they may index with its tensors.
The backward-plan rule sorts one int64 triple per edge and block row: the
costliest rule, which is why these rules are an option (see
docs/contracts.md for the measured cost).
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import CheckError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.checker import _Tensors, _first_bad
from pccompiler.ir.tensors import INT_DTYPES

_NO_TRIPLES = np.zeros((0, 3), np.int64)


def _fail(rule: str, message: str, values: object = None) -> None:
    raise CheckError(rule, message, None, "", values)


def reserved_sum_params(layout: pcir.Layout) -> int:
    """The reserved zero weights at the start of sum_params (layout metadata,
    else max_block_size, at least 1)."""
    text = layout.metadata.get("reserved_sum_params", "")
    if not text:
        return int(layout.max_block_size or 1)
    try:
        return int(text)
    except ValueError:
        _fail("layout-header", f"metadata reserved_sum_params {text[:20]!r} is no integer")


def _ints(table: _Tensors, name: str, what: str) -> np.ndarray:
    return table.get(name, what, dtypes=INT_DTYPES).astype(np.int64, copy=False)


def check_layer_tiling(layout: pcir.Layout, starts: np.ndarray, ends: np.ndarray) -> None:
    """Layers tile [2, num_slots); the written intervals (sorted, disjoint,
    from the dataflow check) leave no hole."""
    cursor = 2
    for li, layer in enumerate(layout.layers):
        if layer.slot_start != cursor:
            _fail("layer-slots", f"layer {li} starts at slot {layer.slot_start}, expected "
                  f"{cursor} (layers tile the buffer in order)", li)
        cursor = layer.slot_start + layer.num_slots
    if cursor != layout.num_slots:
        _fail("layer-slots", f"layers end at slot {cursor}, num_slots is {layout.num_slots}")
    holes = np.flatnonzero(starts[1:] != ends[:-1])
    if len(holes) or starts[0] != 0 or ends[-1] != layout.num_slots:
        slot = int(ends[holes[0]]) if len(holes) else int(ends[-1])
        _fail("slot-writers", f"slot {slot} has no writer", slot)


def _forward_triples(table: _Tensors, part, what: str, reserved: int,
                     num_sum_params: int) -> np.ndarray:
    """Check one forward sum partition; its (child, parent, weight) triples."""
    bs, width = int(part.block_size), int(part.max_children)
    slots = _ints(table, part.block_slots, f"{what} block_slots")
    counts = _ints(table, part.block_num_children, f"{what} block_num_children")
    kids = _ints(table, part.child_slots, f"{what} child_slots")
    starts = _ints(table, part.block_param_starts, f"{what} block_param_starts")
    if len(counts) and counts.min() < 1:
        i = _first_bad(counts < 1)
        _fail("fan-in", f"{what}: block {i} has {counts[i]} children, not 1..{width}", i)
    real = np.arange(width)[None, :] < counts[:, None]
    if (kids[real] < 2).any():
        _fail("padding", f"{what}: a real child reads the reserved slot 0 or 1")
    bad = (starts < reserved) | (starts + width * bs > num_sum_params)
    if bad.any():
        i = _first_bad(bad)
        _fail("param-range", f"{what}: block {i} weights [{starts[i]}, +{width * bs}) are "
              f"not inside [{reserved}, {num_sum_params})", i)
    b, k = np.nonzero(real)
    i = np.arange(bs)[None, :]
    return np.stack(np.broadcast_arrays(
        kids[b, k][:, None], slots[b][:, None] + i,
        starts[b][:, None] + k[:, None] * bs + i), -1).reshape(-1, 3)


def _backward_triples(table: _Tensors, part, what: str, reserved: int) -> np.ndarray:
    """Check one backward sum partition; its (child, parent, weight) triples."""
    cbs, pbs, width = int(part.child_block_size), int(part.parent_block_size), \
        int(part.max_parents)
    if cbs * pbs > reserved:
        _fail("padding", f"{what}: the {reserved} reserved zero weights are fewer than a "
              f"{cbs} x {pbs} block pair")
    cslots = _ints(table, part.cblock_slots, f"{what} cblock_slots")
    counts = _ints(table, part.cblock_num_parents, f"{what} cblock_num_parents")
    parents = _ints(table, part.parent_slots, f"{what} parent_slots")
    pstarts = _ints(table, part.parent_param_starts, f"{what} parent_param_starts")
    c, m = np.nonzero(np.arange(width)[None, :] < counts[:, None])
    j = np.arange(cbs)[None, :, None]
    i = np.arange(pbs)[None, None, :]
    return np.stack(np.broadcast_arrays(
        cslots[c][:, None, None] + j, parents[c, m][:, None, None] + i,
        pstarts[c, m][:, None, None] + j * pbs + i), -1).reshape(-1, 3)


def _sorted_rows(parts: list[np.ndarray]) -> np.ndarray:
    rows = np.concatenate(parts) if parts else _NO_TRIPLES
    return rows[np.lexsort(rows.T[::-1])]


# metadata[BACKWARD_DEFERRED_KEY] == BACKWARD_DEFERRED: a node Layout made
# without its backward partitions (passes/node_backward.py builds them on
# demand); the backward-plan rule then has nothing to compare.
BACKWARD_DEFERRED_KEY, BACKWARD_DEFERRED = "sum_backward", "deferred"


def is_backward_deferred(layout: pcir.Layout) -> bool:
    """Whether `layout` is a node Layout whose backward partitions were left
    out (passes.compile_model(backward=False))."""
    return layout.metadata.get(BACKWARD_DEFERRED_KEY) == BACKWARD_DEFERRED


def check_sum_layer(layout: pcir.Layout, li: int, layer: pcir.Layer, table: _Tensors) -> None:
    """fan-in, padding, param-range and backward-plan of one sum layer
    (backward-plan only where the backward partitions are built)."""
    reserved = reserved_sum_params(layout)
    forward = [_forward_triples(table, p, f"layer {li} sum partition {k}", reserved,
                                int(layout.num_sum_params))
               for k, p in enumerate(layer.sum_partitions)]
    backward = [_backward_triples(table, p, f"layer {li} backward sum partition {k}", reserved)
                for k, p in enumerate(layer.sum_backward_partitions)]
    if is_backward_deferred(layout) and not backward:
        return
    f, b = _sorted_rows(forward), _sorted_rows(backward)
    if f.shape != b.shape or not np.array_equal(f, b):
        _fail("backward-plan", f"layer {li}: the backward plan has {len(b)} (child, parent, "
              f"weight) triples, the forward plan {len(f)}; they differ", li)
