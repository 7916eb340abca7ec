"""Parameter packing straight into device tensors.

`passes.packing.pack_parameters` is the reference mapping (float64 numpy,
used by tools and the tests); an engine needs the same values in its own
dtype on its own device. Building the float64 vector on the host and
copying it costs 8 bytes per parameter of host memory plus a float64 ->
float32 conversion of the whole vector (1.2 GB and about a second for a
146M-edge HCLT). Here every owner tensor is uploaded once in the engine's
dtype and permuted into its packed slice by the device (a strided copy_
into a view of the slice), so the host never holds more than one tensor. On the CPU the permutation
is numpy's (torch's CPU copy of a [4, 128, 512] -> [4, 512, 128] permute is
~8x slower).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from pccompiler import ir
from pccompiler.errors import PassError
from pccompiler.ir import pcir
from pccompiler.passes.packing import _owners, _sum_packed_order


def _upload(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One host -> device copy; the dtype cast runs on the device. The
    array may be a read-only view of the Model's bytes: it is only read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        host = torch.from_numpy(np.ascontiguousarray(array))
    return host.to(device=device, non_blocking=False).to(dtype)


@torch.no_grad()
def pack_parameters_into(model: pcir.Model, layout: pcir.Layout, sum_params: torch.Tensor,
                         input_params: torch.Tensor) -> None:
    """Write the Model's parameters into `sum_params` / `input_params`
    (same layout as passes.packing.pack_parameters; reserved entries 0).

    Streams: each owner tensor is decoded from protobuf (one copy of its
    bytes: the only way upb hands them out), written into its slice and
    dropped before the next one, so the host holds one tensor at a time and
    the allocator reuses the same hot pages (decoding all of them first, as
    a TensorTable would, page-faults ~1 GB of fresh memory on a big HCLT:
    seconds on a small VM). Only the entries no owner covers are zeroed."""
    protos = {t.name: t for t in model.tensors}
    jobs = []
    covered: dict[int, list[tuple[int, int]]] = {id(sum_params): [], id(input_params): []}
    for g, p in _owners(model, layout):
        start, count = int(p.param_start), int(p.param_count)
        target = input_params if g.kind == pcir.INPUT else sum_params
        covered[id(target)].append((start, start + count))
        jobs.append((g, p, target))
    for target in (sum_params, input_params):
        _zero_gaps(target, covered[id(target)])
    _pack_jobs(jobs, protos)


def _pack_jobs(jobs, protos: dict[str, pcir.Tensor]) -> None:
    """Pack each (group, placement, target) of `jobs`, one tensor at a time."""
    for g, p, target in jobs:
        start, count = int(p.param_start), int(p.param_count)
        if g.kind == pcir.INPUT:
            values = ir.to_numpy(protos[g.input.params])
            shape, axes = (values.size,), (0,)
        else:
            values = ir.to_numpy(protos[g.sum.weights])
            shape, axes = _sum_packed_order(g, values.shape, int(p.block_size) or 1)
        if values.size != count:
            raise PassError(f"group {g.id}: {values.size} parameters but the layout "
                            f"reserves {count}; was the layout made for another model?")
        if target.device.type == "cpu":     # numpy's strided copy is ~8x torch's on the CPU
            src_np = values.reshape(shape).transpose(axes)
            np.copyto(target[start:start + count].numpy().reshape(src_np.shape), src_np,
                      casting="unsafe")
        else:
            src = _upload(values, target.dtype, target.device).reshape(shape).permute(axes)
            target[start:start + count].view(src.shape).copy_(src)
        del values


def _zero_gaps(target: torch.Tensor, ranges: list[tuple[int, int]]) -> None:
    """Zero the entries of `target` outside every [start, end) range."""
    pos = 0
    for start, end in sorted(ranges):
        if start > pos:
            target[pos:start].zero_()
        pos = max(pos, end)
    if pos < target.numel():
        target[pos:].zero_()
