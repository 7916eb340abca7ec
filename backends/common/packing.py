"""The only code that maps Model parameter tensors to the flat buffers.

A Layout addresses two flat parameter buffers (`sum_params`,
`input_params`); this module says which Model tensor fills which slice, in
which order, and answers the inverse questions. It is the float64 numpy
reference (tools, tests, the reference backend, reading parameters back
out of an engine); `packing_upload.pack_parameters_into` writes the same
values straight into an engine's device tensors.

Sum weights of a tie class live at its GroupPlacement.param_start, packed
parent block by parent block (block size Bp = placement.block_size): for
parent block b, child k, parent i the weight sits at
`param_start + (offset of block b) + k * Bp + i` (ir/pcir.proto). Input
parameter rows are row-major at param_start. Tied groups share slots, so
only the owner's tensor is packed and unpacked.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from pccompiler import ir
from pccompiler.errors import PassError
from pccompiler.ir import pcir


def sum_packed_order(g: pcir.Group, weights_shape: tuple, bp: int) -> tuple[tuple, tuple]:
    """(reshape, transpose) taking sum group `g`'s weight tensor of shape
    `weights_shape` to packed order, for parent block size `bp`."""
    if g.sum.pattern == pcir.DENSE:
        n, c = weights_shape
        return (n // bp, bp, c), (0, 2, 1)          # [block, k, i]
    if g.sum.pattern == pcir.BLOCK_SPARSE:
        return tuple(weights_shape), (0, 2, 1)       # [edge, j, i]
    return tuple(weights_shape), (0,)                 # sparse: edge order


def param_owners(model: pcir.Model, layout: pcir.Layout
                 ) -> Iterator[tuple[pcir.Group, pcir.GroupPlacement]]:
    """(group, placement) of every group that owns its parameters (inputs
    and sums not tied to another), in placement order."""
    if model.HasField("nodes"):
        yield from node_param_owners(model, layout)
        return
    tied = {t.group for t in model.ties if t.target != t.group}
    groups = model.groups
    for p in layout.placements:
        g = groups[p.group]
        if g.kind != pcir.PRODUCT and g.id not in tied:
            yield g, p


def node_param_owners(model: pcir.Model, layout: pcir.Layout
                      ) -> Iterator[tuple[pcir.Group, pcir.GroupPlacement]]:
    """A node-form Model's two parameter tensors as (group, placement) pairs
    that every packing path already handles: the sum weights as one sparse
    sum group (packed in edge order, block size 1) and the input rows as one
    categorical input group, at the Layout's NodePlacement (group ids -1, -2
    name no Model group)."""
    nc, np_ = model.nodes, layout.node_placement
    if not layout.HasField("node_placement"):
        raise PassError("the Model is node-form but the Layout has no node_placement: was "
                        "the layout made for another model?")
    yield (pcir.Group(id=-1, name="nodes.sum_weights", kind=pcir.SUM,
                      sum=pcir.SumGroup(pattern=pcir.SPARSE, weights=nc.sum_weights)),
           pcir.GroupPlacement(group=-1, param_start=np_.sum_param_start,
                               param_count=np_.sum_param_count, block_size=1))
    yield (pcir.Group(id=-2, name="nodes.input_params", kind=pcir.INPUT,
                      input=pcir.InputGroup(dist=pcir.CATEGORICAL_DIST, params=nc.input_params)),
           pcir.GroupPlacement(group=-2, param_start=np_.input_param_start,
                               param_count=np_.input_param_count))


def check_param_count(g: pcir.Group, size: int, count: int) -> None:
    """PassError unless the group's `size` parameters fill the `count` the layout reserves."""
    if size != count:
        raise PassError(f"group {g.id}: {size} parameters but the layout "
                        f"reserves {count}; was the layout made for another model?")


def pack_parameters(model: pcir.Model, layout: pcir.Layout) -> tuple[np.ndarray, np.ndarray]:
    """(sum_params float64 [num_sum_params], input_params float64 [num_input_params])."""
    table = ir.tensor_table(model)
    sum_params = np.zeros(int(layout.num_sum_params), dtype=np.float64)
    input_params = np.zeros(int(layout.num_input_params), dtype=np.float64)
    for g, p in param_owners(model, layout):
        start, count = int(p.param_start), int(p.param_count)
        if g.kind == pcir.INPUT:
            values = np.asarray(table[g.input.params], dtype=np.float64).ravel()
            target = input_params
        else:
            w = np.asarray(table[g.sum.weights], dtype=np.float64)
            shape, axes = sum_packed_order(g, w.shape, int(p.block_size) or 1)
            values = w.reshape(shape).transpose(axes).ravel()
            target = sum_params
        check_param_count(g, values.size, count)
        target[start:start + count] = values
    return sum_params, input_params


def unpack_parameters(model: pcir.Model, layout: pcir.Layout, sum_params: np.ndarray,
                      input_params: np.ndarray, dtype=None) -> dict[str, np.ndarray]:
    """{tensor name: array} in the Model's shapes and dtypes (the inverse of
    packing), or all in `dtype` if given (float64 flows of float32 weights)."""
    table = ir.tensor_table(model)
    sum_params = np.asarray(sum_params)
    input_params = np.asarray(input_params)
    out: dict[str, np.ndarray] = {}
    for g, p in param_owners(model, layout):
        start, count = int(p.param_start), int(p.param_count)
        name = g.input.params if g.kind == pcir.INPUT else g.sum.weights
        proto = table.proto(name)
        shape = tuple(int(d) for d in proto.dims)
        to = dtype or ir.to_numpy(pcir.Tensor(dtype=proto.dtype, dims=[0])).dtype
        if g.kind == pcir.INPUT:
            out[name] = input_params[start:start + count].reshape(shape).astype(to)
            continue
        packed_shape, axes = sum_packed_order(g, shape, int(p.block_size) or 1)
        transposed = tuple(packed_shape[a] for a in axes)
        values = sum_params[start:start + count].reshape(transposed)
        out[name] = values.transpose(np.argsort(axes)).reshape(shape).astype(to)
    return out


def sum_param_parent_index(layout: pcir.Layout) -> np.ndarray:
    """For every sum parameter, the value slot of the parent node it belongs
    to (the lowest slot over tied copies), -1 for reserved / padding slots.
    Normalising the parameters with equal ids gives the EM update."""
    table = ir.tensor_table(layout)
    out = np.full(int(layout.num_sum_params), np.iinfo(np.int64).max, dtype=np.int64)
    for layer in layout.layers:
        for p in layer.sum_partitions:
            nb, bs = int(p.num_blocks), int(p.block_size)
            slots = np.asarray(table[p.block_slots], dtype=np.int64)
            kids = np.asarray(table[p.block_num_children], dtype=np.int64)
            starts = np.asarray(table[p.block_param_starts], dtype=np.int64)
            b = np.repeat(np.arange(nb), kids)              # one row per real (block, k)
            k = np.arange(len(b)) - np.repeat(np.cumsum(kids) - kids, kids)
            idx = (starts[b] + k * bs)[:, None] + np.arange(bs)
            parent = slots[b][:, None] + np.arange(bs)
            np.minimum.at(out, idx.ravel(), parent.ravel())
    out[out == np.iinfo(np.int64).max] = -1
    return out


def input_param_node_index(layout: pcir.Layout) -> np.ndarray:
    """For every input parameter, the value slot of its node (lowest over tied
    copies); -1 where no node reads it."""
    table = ir.tensor_table(layout)
    out = np.full(int(layout.num_input_params), np.iinfo(np.int64).max, dtype=np.int64)
    for layer in layout.layers:
        for p in layer.input_partitions:
            starts = np.asarray(table[p.node_param_starts], dtype=np.int64)
            ppn = int(p.params_per_node)
            idx = (starts[:, None] + np.arange(ppn)).ravel()
            node = np.repeat(p.slot_start + np.arange(int(p.num_nodes)), ppn)
            np.minimum.at(out, idx, node)
    out[out == np.iinfo(np.int64).max] = -1
    return out
