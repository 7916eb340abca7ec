"""The backward partitions of a node-form Layout, eager or on demand.

Backward partitions list, for every child of a sum layer, its parents in
that layer (helpers/node_tables.backward_tables). Only kernels that push
flows child by child read them (the triton backend); the torch engine runs
its backward over the forward partitions, and a WMC forward reads neither.
On a 110k-node SDD they are a fifth of the layout pass (a sort of every sum
edge, four tensors per partition), so a compile for a backend that does
not read them may leave them out: `compile_model(..., backward=False)`
gives a Layout marked `metadata[DEFERRED_KEY]`, and `add_backward` builds
them later from the Layout's own forward sum partitions.

Everything the tables need is in the forward sum partitions: each row's
parent slot, its real children (the first num_children of its row) and
their weight indices (param start + k). Both ways go through
`sum_edges` and `backward_tables` with the same arrays, and `add_backward`
puts the new tensors where the eager pass writes them (after each layer's
forward tensors), so a completed Layout has the bytes of an eager one.
"""

from __future__ import annotations

import re

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.layout_rules_deep import BACKWARD_DEFERRED as DEFERRED, \
    BACKWARD_DEFERRED_KEY as DEFERRED_KEY, is_backward_deferred as is_deferred
from pccompiler.passes.helpers.edit import add_index_tensor
from pccompiler.passes.helpers.node_tables import BackwardTables, backward_tables


def sum_edges(parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
              num_slots: int, sdt) -> BackwardTables:
    """The backward tables of the sum partitions `parts`, given in layout
    order as (layer index, block slots [nb], num children [nb], child slots
    [nb, K], param starts [nb]); block size 1 (node layouts). The edge
    arrays are filled partition by partition into arrays made once (a
    concatenation of per-partition pieces cost 0.5 s of fresh memory at
    10^7 edges)."""
    counts = [np.asarray(num_children, dtype=np.int64) for _, _, num_children, _, _ in parts]
    total = int(sum(int(c.sum()) for c in counts))
    layers, params = np.empty(total, dtype=np.int32), np.empty(total, dtype=np.int64)
    pslots, cslots = np.empty(total, dtype=sdt), np.empty(total, dtype=sdt)
    pos = 0
    for (li, block_slots, _, child_slots, starts), count in zip(parts, counts):
        k = np.arange(child_slots.shape[1], dtype=np.int64)
        real = k[None, :] < count[:, None]
        end = pos + int(count.sum())
        layers[pos:end] = li
        pslots[pos:end] = np.repeat(block_slots, count)
        cslots[pos:end] = child_slots[real]
        params[pos:end] = (np.asarray(starts, dtype=np.int64)[:, None] + k[None, :])[real]
        pos = end
    return backward_tables(layers, pslots, cslots, params, num_slots, sdt)


def add_partitions(layout: pcir.Layout, li: int, bwd: BackwardTables, i: int, sdt,
                   decoded: dict | None = None) -> None:
    """Backward partition i of `bwd` as layer li's next SumBackwardPartition,
    its four tensors appended to layout.tensors (and their decoded arrays
    to `decoded`, if given: helpers/edit.add_index_tensor)."""
    layer = layout.layers[li]
    width = int(bwd.max_parents[i])
    bp = layer.sum_backward_partitions.add(
        child_block_size=1, parent_block_size=1, num_blocks=len(bwd.cblock_slots[i]),
        max_parents=width, kernel="child_block")
    options = bp.kernel_options          # item by item: a map's update() runs in Python
    options["min_parents"], options["max_parents"] = str(int(bwd.min_parents[i])), str(width)
    name = f"L{li}.bwd{len(layer.sum_backward_partitions) - 1}"
    for field, array, dt in (("cblock_slots", bwd.cblock_slots[i], sdt),
                             ("cblock_num_parents", bwd.num_parents[i], np.int32),
                             ("parent_slots", bwd.parent_slots[i], sdt),
                             ("parent_param_starts", bwd.param_starts[i], np.int64)):
        add_index_tensor(layout.tensors, array, f"{name}.{field}", dt, decoded)
        setattr(bp, field, f"{name}.{field}")


def add_backward(layout: pcir.Layout) -> pcir.Layout:
    """Build the deferred backward partitions of `layout` in place (a no-op
    on any other Layout) and return it: the same partitions and tensors, in
    the same places, as the eager layout pass writes."""
    if not is_deferred(layout):
        return layout
    table = ir.tensor_table(layout)
    sdt = np.dtype(layout.metadata.get("slot_dtype", "int32")).type
    parts = []
    for li, layer in enumerate(layout.layers):
        for sp in layer.sum_partitions:
            nb, k = int(sp.num_blocks), int(sp.max_children)
            parts.append((li, table[sp.block_slots].reshape(nb),
                          table[sp.block_num_children].reshape(nb),
                          table[sp.child_slots].reshape(nb, k),
                          table[sp.block_param_starts].reshape(nb)))
    bwd = sum_edges(parts, int(layout.num_slots), sdt)
    first_new = len(layout.tensors)
    for i, li in enumerate(bwd.layer.tolist()):
        add_partitions(layout, li, bwd, i, sdt)
    _place_after_layers(layout, first_new)
    del layout.metadata[DEFERRED_KEY]
    return layout


_LAYER_OF = re.compile(r"L(\d+)\.")


def _place_after_layers(layout: pcir.Layout, first_new: int) -> None:
    """Move the tensors from `first_new` on (backward tensors, L{li}.bwd*)
    right after the last forward tensor of their layer, where the eager
    pass adds them (tensors of no layer, as nodes.node_slots, stay last)."""
    tensors = layout.tensors
    if first_new == len(tensors):
        return

    def key(i: int) -> tuple[int, int, int]:
        m = _LAYER_OF.match(tensors[i].name)
        return (int(m.group(1)) if m else len(layout.layers), int(i >= first_new), i)

    order = sorted(range(len(tensors)), key=key)
    if order == list(range(len(tensors))):
        return
    blobs = [tensors[i].SerializeToString() for i in order]
    del tensors[:]
    for blob in blobs:
        tensors.add().ParseFromString(blob)
