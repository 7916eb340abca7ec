"""Parameter packing straight into an engine's tensors (`pack_parameters_into`).

`packing.pack_parameters` is the reference mapping (float64 numpy, used by
tools and the tests); an engine needs the same values in its own
dtype on its own device. Building the float64 vector on the host and
copying it costs 8 bytes per parameter of host memory plus a float64 ->
float32 conversion of the whole vector (1.2 GB and about a second for a
146M-edge HCLT).

Two paths, one mapping:

* a CPU target (`_pack_jobs`): each owner tensor's bytes are copied out of
  protobuf once and written into its packed slice by numpy (a strided copy
  where the packed order permutes it; torch's CPU copy of a [4, 128, 512] ->
  [4, 512, 128] permute is ~8x slower), so the host never holds more than
  one tensor;
* any other target (`_pack_batched`): per-tensor uploads cost ~90 us each
  on a GPU (an HCLT has ~1,900 tensors), so the owners' bytes are gathered,
  in packed order, into a small ring of pinned host chunks
  (`CHUNK_BYTES`, two of them: the host fills one while the other is in
  flight) and uploaded into one device staging buffer per segment of at
  most `SEGMENT_BYTES` (a bigger tensor gets a segment of its own); the
  device then applies the packed order in merged runs: consecutive owners
  with the same (packed shape, permutation) whose slices are contiguous
  are one strided copy of a [n, *shape] view (input rows and sparse sums
  have no permutation, so any contiguous stretch of them is one copy); a
  tensor of `DIRECT_BYTES` or more is uploaded straight from its bytes.
  hclt32 (1,340 owner tensors) takes 2 uploads (one per target buffer) and
  3 device copies instead of 1,340 uploads, casts and copies.

Both give bit-identical buffers (tests/test_packing_batched.py); the dtype
cast happens on the target (device) in both.
"""

from __future__ import annotations

import math
import warnings
from operator import attrgetter
from typing import Mapping

import numpy as np
import torch

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.ir import pcir
from pccompiler.ir.tensors import _NUMPY_OF, dtype_name, from_checked_bytes
from pccompiler.backends.common.packing import check_param_count, param_owners, sum_packed_order
from pccompiler.backends.common import prefault
from pccompiler.backends.common.prefault import Prefault

# Pinned host chunk (two of them, from torch's caching host allocator, so a
# second compile in the process reuses them) and the cap of one device
# staging buffer. 8 MB rather than 32: a chunk that small stays in the host's
# cache while it is filled (measured: bench/results/cached_compile.md).
CHUNK_BYTES = 8 << 20
SEGMENT_BYTES = 256 << 20
# A tensor at least this big is uploaded straight from its bytes (pageable
# memory: the driver stages it, synchronously), skipping our host copy into
# a chunk. It pays only for very large tensors: each synchronous copy stalls
# the ring, so a low threshold slows circuits of many mid-sized tensors
# (bench/results/cached_compile.md). None: every tensor is staged.
DIRECT_BYTES: int | None = 64 << 20

# IR dtype -> torch dtype / bytes per element, for the batched path
_TORCH_OF = {pcir.FLOAT32: torch.float32, pcir.FLOAT64: torch.float64,
             pcir.FLOAT16: torch.float16, pcir.INT32: torch.int32, pcir.INT64: torch.int64,
             pcir.UINT8: torch.uint8}
_ITEMSIZE = {k: _NUMPY_OF[k].itemsize for k in _TORCH_OF}


def _upload(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """One host -> device copy; the dtype cast runs on the device. The
    array may be a read-only view of the Model's bytes: it is only read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        host = torch.from_numpy(np.ascontiguousarray(array))
    return host.to(device=device, non_blocking=False).to(dtype)


@torch.no_grad()
def pack_parameters_into(model: pcir.Model, layout: pcir.Layout, sum_params: torch.Tensor,
                         input_params: torch.Tensor,
                         arrays: Mapping[str, np.ndarray] | None = None) -> None:
    """Write the Model's parameters into `sum_params` / `input_params`
    (same layout as packing.pack_parameters; reserved entries 0).

    Each owner tensor is decoded from protobuf (one copy of its bytes: the
    only way upb hands them out) and dropped before the next one, so the
    host holds one tensor (CPU target) or one pinned chunk ring plus one
    tensor (device target) at a time; decoding all of them first, as a
    TensorTable would, page-faults ~1 GB of fresh memory on a big HCLT
    (seconds on a small VM). Only the entries no owner covers are zeroed.

    `arrays` (ir/external_arrays.py): tensors whose bytes are held outside
    the Model (a memory-mapped .pcc, the frontend's arrays); they are read
    in place, with no protobuf copy, and take precedence over raw_data."""
    protos = {t.name: t for t in model.tensors}
    jobs = _jobs(model, layout, sum_params, input_params)
    if sum_params.device.type == "cpu" and input_params.device.type == "cpu":
        if _nbytes(sum_params) + _nbytes(input_params) < prefault.MIN_BYTES:
            # too small for the helper: skip listing its ranges (a Python
            # pass over every owner, ~2 ms of hclt32's cached compile)
            _pack_jobs(jobs, protos, arrays)
            return
        # fresh buffers: their pages are faulted in on the other core while
        # this one copies (backends/common/prefault.py)
        with Prefault([(target, int(p.param_start), int(p.param_count))
                       for _, p, target in jobs]):
            _pack_jobs(jobs, protos, arrays)
    else:
        _pack_batched(jobs, protos, arrays=arrays)


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _values(proto: pcir.Tensor, arrays: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """The tensor's values: the external array when `arrays` has it (checked
    against dims and dtype), else decoded from the message."""
    if arrays is not None and proto.name in arrays:
        array = np.asarray(arrays[proto.name])
        if array.dtype != _NUMPY_OF.get(proto.dtype) or array.size != math.prod(proto.dims):
            raise LoadError(f"tensor {proto.name!r}: the external array is {array.dtype} "
                            f"{list(array.shape)}, the Model says {list(proto.dims)} of "
                            f"{dtype_name(proto.dtype)}")
        return array.reshape(tuple(proto.dims))
    # The usual tensor (inline, a numpy dtype, bytes agreeing with
    # dims) is read with one length check, as a cached compile reads
    # thousands of them; anything else goes through to_numpy and its errors.
    np_dtype = _NUMPY_OF.get(proto.dtype)
    if np_dtype is not None and not proto.HasField("external"):
        dims = tuple(proto.dims)
        data = proto.raw_data
        if dims and min(dims) >= 0 and len(data) == math.prod(dims) * np_dtype.itemsize:
            return from_checked_bytes(proto.dtype, dims, data)
    return ir.to_numpy(proto)


def _jobs(model, layout, sum_params, input_params) -> list:
    """[(group, placement, target)] of every owner, zeroing the target
    entries no owner covers."""
    jobs = []
    covered: dict[int, list[tuple[int, int]]] = {id(sum_params): [], id(input_params): []}
    for g, p in param_owners(model, layout):
        start, count = int(p.param_start), int(p.param_count)
        target = input_params if g.kind == pcir.INPUT else sum_params
        covered[id(target)].append((start, start + count))
        jobs.append((g, p, target))
    for target in (sum_params, input_params):
        _zero_gaps(target, covered[id(target)])
    return jobs


def _pack_jobs(jobs, protos: dict[str, pcir.Tensor],
               arrays: Mapping[str, np.ndarray] | None = None) -> None:
    """Pack each (group, placement, target) of `jobs`, one tensor at a time
    (CPU targets, and the reference the batched path is tested against)."""
    views: dict[int, np.ndarray] = {}
    for g, p, target in jobs:
        start, count = int(p.param_start), int(p.param_count)
        if g.kind == pcir.INPUT:
            values = _values(protos[g.input.params], arrays)
            shape, axes = (values.size,), (0,)
        else:
            values = _values(protos[g.sum.weights], arrays)
            shape, axes = sum_packed_order(g, values.shape, int(p.block_size) or 1)
        check_param_count(g, values.size, count)
        if target.device.type == "cpu":     # numpy's strided copy is ~8x torch's on the CPU
            flat = views.get(id(target))
            if flat is None:
                flat = views[id(target)] = target.numpy()
            src_np = values.reshape(shape).transpose(axes)
            np.copyto(flat[start:start + count].reshape(src_np.shape), src_np, casting="unsafe")
        else:
            src = _upload(values, target.dtype, target.device).reshape(shape).permute(axes)
            target[start:start + count].view(src.shape).copy_(src)
        del values


class _Job:
    """One owner tensor of the batched path, in the units of its dtype."""
    __slots__ = ("proto", "target", "start", "count", "shape", "axes", "nbytes")

    def __init__(self, proto, target, start, count, shape, axes, nbytes):
        self.proto, self.target, self.start, self.count = proto, target, start, count
        self.shape, self.axes, self.nbytes = shape, axes, nbytes


def _plan_batched(jobs, protos, arrays=None):
    """({(target id, IR dtype): [_Job] in packed order}, [jobs left to the
    per-tensor path]). Raises what the per-tensor path raises for a tensor
    it cannot decode and PassError for a wrong parameter count, all before
    anything is written."""
    groups: dict[tuple[int, int], list[_Job]] = {}
    slow = []
    for job in jobs:
        g, p, target = job
        start, count = int(p.param_start), int(p.param_count)
        kind = g.kind
        proto = protos[g.input.params if kind == pcir.INPUT else g.sum.weights]
        dims = tuple(proto.dims)
        dtype = proto.dtype
        itemsize = _ITEMSIZE.get(dtype)
        if arrays is not None and proto.name in arrays:
            _values(proto, arrays)      # dims and dtype agree with the array
        elif itemsize is None or proto.HasField("external") or (dims and min(dims) < 0):
            ir.to_numpy(proto)          # raises the per-tensor path's LoadError
            slow.append(job)
            continue
        size = math.prod(dims)
        if kind == pcir.INPUT:
            shape, axes = (size,), (0,)
        else:
            shape, axes = sum_packed_order(g, dims, int(p.block_size) or 1)
            if math.prod(shape) != size:    # the per-tensor path's reshape error
                slow.append(job)
                continue
            if len(axes) == 1:
                shape = (size,)             # no permutation: a flat copy
        check_param_count(g, size, count)
        key = (id(target), dtype)
        members = groups.get(key)
        if members is None:
            members = groups[key] = []
        members.append(_Job(proto, target, start, count, shape, axes, size * itemsize))
    for key, members in groups.items():
        ordered = sorted(members, key=attrgetter("start"))
        if all(a.start + a.count <= b.start for a, b in zip(ordered, ordered[1:])):
            groups[key] = ordered           # disjoint slices: packed order
    return groups, slow


def _runs(members: list[_Job]):
    """Maximal runs of consecutive jobs that are one strided copy: same
    packed shape and permutation (any flat ones), contiguous slices."""
    run: list[_Job] = []
    for job in members:
        if run and (job.start != run[-1].start + run[-1].count or job.axes != run[0].axes
                    or (len(job.axes) > 1 and job.shape != run[0].shape)):
            yield run
            run = []
        run.append(job)
    if run:
        yield run


def _segments(members: list[_Job], limit: int):
    """Consecutive jobs of at most `limit` bytes together (one bigger job alone)."""
    seg: list[_Job] = []
    total = 0
    for job in members:
        if seg and total + job.nbytes > limit:
            yield seg, total
            seg, total = [], 0
        seg.append(job)
        total += job.nbytes
    if seg:
        yield seg, total


class _ChunkRing:
    """Host staging: `count` chunks of `size` bytes (pinned for CUDA) that
    take turns; a chunk is refilled only once its upload has finished."""

    def __init__(self, size: int, count: int, device: torch.device):
        self.cuda = device.type == "cuda"
        pin = self.cuda and torch.cuda.is_available()
        self.chunks = [torch.empty(size, dtype=torch.uint8, pin_memory=pin) for _ in range(count)]
        self.views = [memoryview(c.numpy()) for c in self.chunks]
        self.events: list = [None] * count
        self.size, self.turn, self.fill, self.base = size, 0, 0, 0
        self.stream = torch.cuda.current_stream(device) if self.cuda else None

    def write(self, data: bytes, dest: torch.Tensor, dest_pos: int) -> int:
        """Stage `data` for dest[dest_pos:...]; returns the new dest_pos."""
        n = len(data)
        if self.fill == 0:
            self._wait_current(dest_pos)
        if self.fill + n < self.size:            # the usual case: it fits
            self.views[self.turn][self.fill:self.fill + n] = data
            self.fill += n
            return dest_pos + n
        view, pos = memoryview(data), 0
        while pos < n:
            if self.fill == 0:
                self._wait_current(dest_pos)
            take = min(n - pos, self.size - self.fill)
            self.views[self.turn][self.fill:self.fill + take] = view[pos:pos + take]
            self.fill += take
            pos += take
            dest_pos += take
            if self.fill == self.size:
                self.flush(dest)
        return dest_pos

    def _wait_current(self, dest_pos: int) -> None:
        event = self.events[self.turn]
        if event is not None:
            event.synchronize()
            self.events[self.turn] = None
        self.base = dest_pos

    def flush(self, dest: torch.Tensor) -> None:
        """Upload the current chunk's bytes to dest[base:base + fill]."""
        if self.fill == 0:
            return
        chunk = self.chunks[self.turn][:self.fill]
        dest[self.base:self.base + self.fill].copy_(chunk, non_blocking=self.cuda)
        if self.cuda:
            event = torch.cuda.Event()
            event.record(self.stream)
            self.events[self.turn] = event
        self.turn = (self.turn + 1) % len(self.chunks)
        self.fill = 0


@torch.no_grad()
def _pack_batched(jobs, protos: dict[str, pcir.Tensor], chunk_bytes: int = CHUNK_BYTES,
                  segment_bytes: int = SEGMENT_BYTES, direct_bytes: int | None = DIRECT_BYTES,
                  arrays: Mapping[str, np.ndarray] | None = None) -> None:
    """Pack `jobs` through host chunks, one upload per chunk and one device
    copy per merged run (module docstring). Works for CPU targets too (the
    chunks then are plain memory and every copy is synchronous), which is
    how the tests compare it with `_pack_jobs`."""
    groups, slow = _plan_batched(jobs, protos, arrays)
    total = sum(j.nbytes for members in groups.values() for j in members)
    ring = None
    for members in groups.values():
        target = members[0].target
        if ring is None:        # a small model gets a small chunk, a big one two
            size = min(chunk_bytes, 1 << max(12, (total - 1).bit_length()))
            ring = _ChunkRing(size, 2 if total > size else 1, target.device)
        dtype = _TORCH_OF[members[0].proto.dtype]
        for seg, seg_bytes in _segments(members, segment_bytes):
            staging = torch.empty(seg_bytes, dtype=torch.uint8, device=target.device)
            pos = 0
            for job in seg:
                raw = _raw_bytes(job.proto, arrays)
                if len(raw) != job.nbytes:
                    ir.to_numpy(job.proto)       # raises the byte-count LoadError
                if direct_bytes is not None and job.nbytes >= direct_bytes:
                    ring.flush(staging)     # the next staged byte starts a chunk at pos
                    with warnings.catch_warnings():     # a read-only buffer, only read
                        warnings.simplefilter("ignore", UserWarning)
                        host = torch.frombuffer(raw, dtype=torch.uint8)
                    staging[pos:pos + job.nbytes].copy_(host)   # pageable: synchronous
                    pos += job.nbytes
                    del host
                else:
                    pos = ring.write(raw, staging, pos)
                del raw
            ring.flush(staging)
            values = staging.view(dtype)
            offset = 0
            for run in _runs(seg):
                first, n = run[0], sum(j.count for j in run)
                src = values[offset:offset + n]
                dst = target[first.start:first.start + n]
                if len(first.axes) > 1:
                    src = src.view(len(run), *first.shape).permute(
                        0, *(a + 1 for a in first.axes))
                    dst = dst.view(src.shape)
                dst.copy_(src)
                offset += n
            del staging, values
    if slow:
        _pack_jobs(slow, protos, arrays)


def _raw_bytes(proto: pcir.Tensor, arrays: Mapping[str, np.ndarray] | None):
    """The tensor's bytes: a view of its array in `arrays`, else raw_data (a copy)."""
    if arrays is not None and proto.name in arrays:
        return memoryview(np.ascontiguousarray(arrays[proto.name])).cast("B")
    return proto.raw_data


def _zero_gaps(target: torch.Tensor, ranges: list[tuple[int, int]]) -> None:
    """Zero the entries of `target` outside every [start, end) range."""
    pos = 0
    for start, end in sorted(ranges):
        if start > pos:
            target[pos:start].zero_()
        pos = max(pos, end)
    if pos < target.numel():
        target[pos:].zero_()
