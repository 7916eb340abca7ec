"""Many small host tensors to a device in one copy (backends/common/upload.py).

The staging itself runs here on the CPU (`_stage` / `_views`: the bytes and
views the device gets); the device side on torch's "meta" device, which has
no values but the same views, dtypes, shapes and storage sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from pccompiler.backends.common import upload


def _tensors() -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    return [torch.from_numpy(rng.integers(-2**31, 2**31, size=7).astype(np.int32)),
            torch.from_numpy(rng.integers(-2**40, 2**40, size=(3, 5))),
            torch.zeros(0, dtype=torch.int64),
            torch.from_numpy(rng.integers(0, 9, size=(2, 3)).astype(np.int32)).t(),  # strided
            torch.from_numpy(rng.integers(0, 2**62, size=1))]


def test_staged_views_hold_each_tensor_at_an_aligned_offset():
    tensors = _tensors()
    buffer, offsets = upload._stage(tensors)
    views = upload._views(buffer, tensors, offsets)
    for t, v, off in zip(tensors, views, offsets):
        assert off % upload.ALIGN == 0
        assert v.dtype == t.dtype and v.shape == t.shape and v.is_contiguous()
        assert torch.equal(v, t)
        assert v.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()


def test_upload_is_one_copy_into_one_device_buffer(monkeypatch):
    tensors = _tensors()
    copies = []
    to = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        copies.append(self.numel())
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    moved = upload.upload(tensors, "meta")
    assert len(copies) == 1
    total = upload._offsets(tensors)[1]
    assert all(m.untyped_storage().nbytes() == total for m in moved)     # views of one buffer
    for t, m in zip(tensors, moved):
        assert m.device.type == "meta" and m.dtype == t.dtype and m.shape == t.shape
        assert m.is_contiguous() and m.storage_offset() * m.element_size() % upload.ALIGN == 0


def test_a_cpu_target_copies_nothing():
    tensors = _tensors()
    moved = upload.upload(tensors, "cpu")
    for t, m in zip(tensors, moved):
        assert m.is_contiguous() and torch.equal(m, t)
    assert moved[0] is tensors[0]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_only_empty_tensors_need_no_copy(device):
    moved = upload.upload([torch.zeros(0, dtype=torch.int64), torch.zeros(0, 3, dtype=torch.int32)],
                          device)
    assert [(m.shape, m.dtype, m.device.type) for m in moved] == [
        ((0,), torch.int64, device), ((0, 3), torch.int32, device)]


@dataclass
class _Part:
    index: torch.Tensor
    tiles: tuple[torch.Tensor, torch.Tensor] | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class _Tree:
    parts: list[_Part]
    shared: list[_Part]
    rows: torch.Tensor | None = None


def test_upload_fields_moves_every_tensor_and_keeps_sharing():
    a = _Part(torch.arange(4), (torch.arange(2, dtype=torch.int32), torch.arange(3)))
    b = _Part(torch.arange(5, dtype=torch.int32), None, {"k": "v"})
    tree = _Tree([a, b], [a], rows=a.index)     # `a` and its index reachable twice
    upload.upload_fields(tree, "meta")
    assert tree.shared[0] is tree.parts[0]
    assert tree.rows is tree.parts[0].index
    moved = [a.index, *a.tiles, b.index]
    assert all(t.device.type == "meta" for t in moved)
    assert [t.dtype for t in moved] == [torch.int64, torch.int32, torch.int64, torch.int32]
    total = sum(-(-t.numel() * t.element_size() // upload.ALIGN) * upload.ALIGN for t in moved)
    assert all(t.untyped_storage().nbytes() == total for t in moved)     # views of one buffer
    assert b.tiles is None and b.options == {"k": "v"}
