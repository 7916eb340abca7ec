"""build_plan moves a plan to its device in one copy (common/upload.py).

No GPU is needed: torch's "meta" device has no values but the same views,
dtypes and shapes, so the plan built for it is compared field by field with
the one built for the CPU (whose values the other plan tests check)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import pccompiler as pc
from pccompiler.backends.triton.plan import build_plan
from pccompiler.backends.triton.scratch import compact_remap
from pccompiler.passes.manager import compile_model


def _leaves(value, path="plan"):
    """(path, value) of every field a plan holds that is no dataclass, list
    or tuple (tensors, sizes, flags, options), in a fixed order."""
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name), f"{path}.{f.name}")
    else:
        yield path, value


def _fields(plan) -> list[tuple[str, torch.Tensor]]:
    return [(p, v) for p, v in _leaves(plan) if isinstance(v, torch.Tensor)]


def _scalars(plan) -> list[tuple[str, object]]:
    return [(p, v) for p, v in _leaves(plan) if not isinstance(v, torch.Tensor)]


@pytest.mark.parametrize("build", [
    lambda: pc.hmm(seq_length=6, num_latents=16, num_emits=5),
    lambda: pc.pd((4, 4), 6, split_intervals=2, num_cats=5, seed=2),
], ids=["hmm", "pd"])
@pytest.mark.parametrize("compact", [False, True])
def test_a_device_plan_is_the_host_plan_in_one_copy(build, compact, monkeypatch):
    layout = compile_model(pc.lower(build())).layout
    slot_map = compact_remap(layout) if compact else None
    if compact and slot_map is None:
        pytest.skip("nothing to compact")
    host = build_plan(layout, "cpu", slot_map)
    copies = []
    to = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args else None)
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "meta":
            copies.append(self.numel())
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    dev = build_plan(layout, "meta", slot_map)
    assert len(copies) == 1
    host_fields, dev_fields = _fields(host), _fields(dev)
    assert [p for p, _ in host_fields] == [p for p, _ in dev_fields]
    buffers = set()
    for (path, h), (_, d) in zip(host_fields, dev_fields):
        assert d.device.type == "meta", path
        assert (d.dtype, d.shape) == (h.dtype, h.shape), path
        assert d.is_contiguous(), path
        buffers.add(d.untyped_storage().nbytes())
        assert d.storage_offset() * d.element_size() % 16 == 0, path
    # every tensor, the merged sums' concatenations too: a view of the one buffer
    assert len(buffers) == 1
    assert _scalars(dev) == _scalars(host)
