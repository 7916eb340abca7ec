"""Many small host tensors to a device in one copy.

A Triton plan (backends/triton/plan.py) holds hundreds of small index
tensors (an HCLT's 44 layers, several per partition); moving each with
`.to(device)` is one synchronous host -> device copy apiece (~10-20 us on a
GPU, plus an allocation). `upload` instead packs them into one host buffer,
copies that once and hands out views of the device buffer; `upload_fields`
does it for every tensor a tree of dataclasses holds (a whole plan). Every
view starts at a multiple of `ALIGN` bytes, so a kernel sees the same
pointer alignment as with a tensor of its own. On a CPU target nothing is
copied.

The host buffer is pageable: a plan is uploaded once, so the copy is one
synchronous call either way, and pinning a fresh buffer (cudaHostAlloc
page-locks every page) is not expected to win back its cost on a single
copy of a few MB (not measured on a GPU yet).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

ALIGN = 16      # Triton specializes kernels on pointers divisible by 16


def _offsets(tensors: Sequence[torch.Tensor]) -> tuple[list[int], int]:
    """Byte offset of each tensor in the packed buffer, and its size."""
    offsets, total = [], 0
    for t in tensors:
        offsets.append(total)
        total += -(-t.numel() * t.element_size() // ALIGN) * ALIGN
    return offsets, total


def _stage(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """One uint8 host buffer holding every tensor's bytes at its offset.
    Each tensor is written through the buffer seen as its own dtype (one
    slice assignment; ALIGN is a multiple of every item size), not as
    bytes: a plan's hundreds of small tensors made the byte views the
    larger part of the staging."""
    offsets, total = _offsets(tensors)
    buffer = torch.empty(total, dtype=torch.uint8)
    flat = buffer.numpy()
    typed: dict[torch.dtype, np.ndarray] = {}
    for t, off in zip(tensors, offsets):
        if t.requires_grad or not t.is_contiguous():
            t = t.detach().contiguous()
        data = t.numpy().reshape(-1)
        whole = typed.get(t.dtype)
        if whole is None:
            whole = typed[t.dtype] = flat.view(data.dtype)
        start = off // data.itemsize
        whole[start:start + data.size] = data
    return buffer, offsets


def _views(buffer: torch.Tensor, tensors: Sequence[torch.Tensor],
           offsets: list[int]) -> list[torch.Tensor]:
    """Each tensor's dtype and shape over its bytes of `buffer`: one
    as_strided per tensor over the buffer seen as its dtype (a slice and a
    view cost twice that, and a plan holds hundreds of small tensors)."""
    typed: dict[torch.dtype, tuple[torch.Tensor, int, int]] = {}   # (buffer as dtype, base, size)
    out = []
    for t, off in zip(tensors, offsets):
        seen = typed.get(t.dtype)
        if seen is None:          # ALIGN divides the buffer: it is whole items of any dtype
            whole = buffer.view(t.dtype)
            seen = typed[t.dtype] = (whole, whole.storage_offset(), whole.element_size())
        whole, base, size = seen
        shape = t.shape
        ndim = len(shape)
        strides = (1,) if ndim == 1 else (max(int(shape[1]), 1), 1) if ndim == 2 else \
            _contiguous_strides(shape)
        out.append(whole.as_strided(shape, strides, base + off // size))
    return out


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    """The strides of a contiguous tensor of `shape` (in elements)."""
    if len(shape) == 1:
        return (1,)
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def upload(tensors: Sequence[torch.Tensor], device: torch.device | str) -> list[torch.Tensor]:
    """`tensors` (host) on `device`, same dtypes and shapes, contiguous:
    views of one device buffer filled by one copy; on a CPU target the
    tensors themselves (made contiguous)."""
    device = torch.device(device)
    if device.type == "cpu":
        return [t.contiguous() for t in tensors]
    if not any(t.numel() for t in tensors):      # nothing to copy
        return [torch.empty(t.shape, dtype=t.dtype, device=device) for t in tensors]
    host, offsets = _stage(tensors)
    return _views(host.to(device), tensors, offsets)


_LEAVES = frozenset({int, float, bool, str, bytes, dict, type(None)})   # hold no tensor to move


def _tensor_fields(value: object, owners: list[tuple[object, str]],
                   tensors: dict[int, torch.Tensor], seen: set[int]) -> None:
    """Collect (object, field name) of every dataclass field reachable from
    `value` that holds a tensor or a tuple of tensors, and those tensors
    (by identity), visiting each dataclass object once."""
    if isinstance(value, list):
        for item in value:
            _tensor_fields(item, owners, tensors, seen)
        return
    if not _is_dataclass_object(value) or id(value) in seen:
        return
    seen.add(id(value))
    for name, item in vars(value).items():
        kind = type(item)
        if kind in _LEAVES:                # most fields: one set lookup
            continue
        if kind is torch.Tensor or isinstance(item, torch.Tensor):
            owners.append((value, name))
            tensors[id(item)] = item
        elif isinstance(item, tuple):
            held = [t for t in item if isinstance(t, torch.Tensor)]
            if held:
                owners.append((value, name))
                tensors.update((id(t), t) for t in held)
        elif isinstance(item, list):       # a plan's lists of parts: empty ones cost no call
            for element in item:
                _tensor_fields(element, owners, tensors, seen)
        elif _is_dataclass_object(item):
            _tensor_fields(item, owners, tensors, seen)


def _is_dataclass_object(value: object) -> bool:
    """dataclasses.is_dataclass(value) and not a class (one attribute test
    on its type; upload_fields asks it of every part of a plan)."""
    return hasattr(type(value), "__dataclass_fields__")


def upload_fields(root: object, device: torch.device | str) -> None:
    """Move every tensor held by `root` (a dataclass; through fields, lists
    and tuples of tensors) to `device` in one `upload`. An object or tensor
    reachable twice (a part listed in two places) stays one object."""
    device = torch.device(device)
    if device.type == "cpu":
        return
    owners: list[tuple[object, str]] = []
    tensors: dict[int, torch.Tensor] = {}
    _tensor_fields(root, owners, tensors, set())
    moved = dict(zip(tensors, upload(list(tensors.values()), device)))
    swap = lambda t: moved.get(id(t), t)  # noqa: E731
    for obj, name in owners:
        value = getattr(obj, name)
        setattr(obj, name, tuple(map(swap, value)) if isinstance(value, tuple) else swap(value))
