"""A Layout's index arrays as torch tensors, decoded once per device.

Every engine needs the same things from a Layout: per layer, the slots each
partition reads and writes and where its parameters live. Decoding them from
protobuf on every call would dominate small batches, so `build_layout_index`
does it once and keeps everything as int64 tensors on the target device.

It also derives what the EM update needs and the Layout does not spell out:
for every sum parameter the "parent key" (the parameter slot of its parent
node inside the tie class: `block_param_starts[b] + i`), and for every input
parameter the start of its row. Tied copies share parameter slots, so their
keys coincide and their statistics add up.

The Triton backend decodes the same partitions into its own structures
(backends/triton/plan.py, `*KernelPart`): int32 slot arrays in the Layout's
compact shape plus kernel-launch facts (atomics, owner blocks, program
groups, autotuned options). The parts here are int64 and pre-expanded for
torch advanced indexing (a [nb, K, bs] weight index per sum partition),
which is what the torch engine, the top-down queries and the generic EM
read; one structure for both would cost either the kernels' narrow
indices or torch's ready-made gathers. Field names follow ir/pcir.proto
wherever a field holds what a proto field holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pccompiler import ir
from pccompiler.backends.common.block_runs import equal_runs
from pccompiler.ir import pcir


@dataclass
class InputPart:
    """Input nodes `slot_start .. slot_start + num_nodes - 1` of one distribution."""
    dist: int
    slot_start: int
    num_nodes: int
    node_vars: torch.Tensor          # long [n]
    node_param_starts: torch.Tensor  # long [n]
    params_per_node: int


@dataclass
class ProductPart:
    slot_start: int
    num_nodes: int
    child_slots: torch.Tensor        # long [n, num_children], padding slot 1


@dataclass
class SumPart:
    """Forward plan of sum blocks: parent slots [nb, bs], children [nb, K],
    weight indices [nb, K, bs] into sum_params (padding children -> param 0,
    which is reserved and 0.0)."""
    block_size: int
    num_blocks: int
    max_children: int
    parent_slots: torch.Tensor       # long [nb, bs]
    child_slots: torch.Tensor        # long [nb, K], padding slot 0
    weight_index: torch.Tensor       # long [nb, K, bs]
    kernel: str = ""
    parent_start: int = -1           # parent_slots flattened = parent_start + arange, or -1


@dataclass
class LayerIndex:
    kind: int
    inputs: list[InputPart] = field(default_factory=list)
    products: list[ProductPart] = field(default_factory=list)
    sums: list[SumPart] = field(default_factory=list)


@dataclass
class LayoutIndex:
    """Everything an engine reads from a Layout, as tensors on one device."""
    num_slots: int
    num_sum_params: int
    num_input_params: int
    num_vars: int
    root_slot: int
    layers: list[LayerIndex]
    # EM keys (see module docstring); -1 marks reserved or unused entries.
    sum_param_parent: torch.Tensor   # long [num_sum_params]
    input_param_row: torch.Tensor    # long [num_input_params] (categorical rows)
    bernoulli_rows: torch.Tensor     # long [R_b] row starts
    gaussian_rows: torch.Tensor      # long [R_g] row starts
    device: torch.device


def _long(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """An int64 tensor of `array`, sharing the memory of an int64 array
    made here (np.where results, ...) instead of copying it once more; an
    array over the Layout's bytes (read-only) or of another dtype is copied."""
    a = np.asarray(array, dtype=np.int64)
    if not a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, dtype=np.int64)
    return torch.from_numpy(a).to(device)


def _sum_part(sp: pcir.SumPartition, table: ir.TensorTable, device: torch.device,
              parent_key: np.ndarray) -> SumPart:
    bs, nb, kmax = int(sp.block_size), int(sp.num_blocks), int(sp.max_children)
    block_slots = np.asarray(table[sp.block_slots], dtype=np.int64).reshape(nb)
    num_children = np.asarray(table[sp.block_num_children], dtype=np.int64).reshape(nb)
    child_slots = np.asarray(table[sp.child_slots], dtype=np.int64).reshape(nb, kmax)
    starts = np.asarray(table[sp.block_param_starts], dtype=np.int64).reshape(nb)
    ks = np.arange(kmax, dtype=np.int64)
    real = ks[None, :] < num_children[:, None]                                  # [nb, K]
    child_slots = np.where(real, child_slots, 0)
    if bs == 1:                          # node layouts: [nb, K] arrays, fewer numpy calls
        widx = np.where(real, starts[:, None] + ks[None, :], 0)
        parent_key[widx[real]] = np.repeat(starts, np.count_nonzero(real, axis=1))  # clip(n, 0, K)
        widx, parent_slots = widx[:, :, None], block_slots[:, None]
    else:
        ii = np.arange(bs, dtype=np.int64)
        widx = starts[:, None, None] + ks[None, :, None] * bs + ii[None, None, :]   # [nb, K, bs]
        widx = np.where(real[:, :, None], widx, 0)
        rb, rk = np.nonzero(real)        # the real (block, child) pairs in C order
        parent_key[widx[rb, rk]] = starts[rb][:, None] + ii[None, :]
        parent_slots = block_slots[:, None] + ii[None, :]
    g = equal_runs(child_slots, num_children, bs, RUN_MAX_ROWS)
    if g > 1:
        parent_slots, child_slots, widx = merge_runs(parent_slots, child_slots, widx, g)
        bs, nb = bs * g, nb // g
    flat = parent_slots.reshape(-1)          # consecutive: written as a slice (large parts)
    consecutive = len(flat) >= PARENT_RUN_MIN and bool((np.diff(flat) == 1).all())
    return SumPart(bs, nb, kmax, _long(parent_slots, device), _long(child_slots, device),
                   _long(widx, device), sp.kernel, int(flat[0]) if consecutive else -1)


RUN_MAX_ROWS = 128     # rows of a merged block (as the triton plan's program groups)
PARENT_RUN_MIN = 4096  # parents below this are written by index (the check costs more)


def merge_runs(parent_slots: np.ndarray, child_slots: np.ndarray, widx: np.ndarray, g: int):
    """Aligned runs of g blocks with equal children as one block of g * bs
    rows: (parent slots [nb/g, g*bs], child slots [nb/g, K], weight index
    [nb/g, K, g*bs]). The engine then gathers each child tile once per run
    and does one wider bmm: a row tile of a pruned sum (one-row blocks with
    equal child lists) costs what a dense block of its size does."""
    nb, k, bs = widx.shape
    runs = nb // g
    parents = parent_slots.reshape(runs, g * bs)
    weights = widx.reshape(runs, g, k, bs).transpose(0, 2, 1, 3).reshape(runs, k, g * bs)
    return parents, child_slots[::g], weights


def build_layout_index(layout: pcir.Layout, device: torch.device | str = "cpu") -> LayoutIndex:
    """Decode `layout` into a LayoutIndex on `device` (one pass over partitions)."""
    device = torch.device(device)
    table = ir.tensor_table(layout)
    parent_key = np.full(int(layout.num_sum_params), -1, dtype=np.int64)
    input_row = np.full(int(layout.num_input_params), -1, dtype=np.int64)
    bern_rows: list[np.ndarray] = []
    gauss_rows: list[np.ndarray] = []
    layers: list[LayerIndex] = []
    for layer in layout.layers:
        li = LayerIndex(kind=int(layer.kind))
        for ip in layer.input_partitions:
            n = int(ip.num_nodes)
            node_vars = np.asarray(table[ip.node_vars], dtype=np.int64).reshape(n)
            starts = np.asarray(table[ip.node_param_starts], dtype=np.int64).reshape(n)
            ppn = int(ip.params_per_node)
            if ip.dist == pcir.CATEGORICAL_DIST:
                cols = starts[:, None] + np.arange(ppn, dtype=np.int64)[None, :]
                input_row[cols] = np.broadcast_to(starts[:, None], cols.shape)
            elif ip.dist == pcir.BERNOULLI_DIST:
                bern_rows.append(starts)
            elif ip.dist == pcir.GAUSSIAN_DIST:
                gauss_rows.append(starts)
            li.inputs.append(InputPart(int(ip.dist), int(ip.slot_start), n,
                                       _long(node_vars, device), _long(starts, device), ppn))
        for pp in layer.product_partitions:
            n, k = int(pp.num_nodes), int(pp.num_children)
            cs = np.asarray(table[pp.child_slots], dtype=np.int64).reshape(n, k)
            li.products.append(ProductPart(int(pp.slot_start), n, _long(cs, device)))
        for sp in layer.sum_partitions:
            li.sums.append(_sum_part(sp, table, device, parent_key))
        layers.append(li)

    def rows(parts: list[np.ndarray]) -> torch.Tensor:
        return _long(np.unique(np.concatenate(parts)) if parts else np.zeros(0), device)

    return LayoutIndex(
        num_slots=int(layout.num_slots), num_sum_params=int(layout.num_sum_params),
        num_input_params=int(layout.num_input_params), num_vars=int(layout.num_vars),
        root_slot=int(layout.root_slot), layers=layers,
        sum_param_parent=_long(parent_key, device), input_param_row=_long(input_row, device),
        bernoulli_rows=rows(bern_rows), gaussian_rows=rows(gauss_rows), device=device)
