"""`verify`: run the IR checker on the input Model (changes nothing)."""

from __future__ import annotations

from pccompiler.ir import pcir
from pccompiler.ir.checker import check
from pccompiler.passes.registry import register


@register("verify", "check every IR invariant of the input Model (ir.check)")
def verify(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    check(model)
    ctx.note(f"{model.nodes.num_nodes} nodes ok" if model.HasField("nodes")
             else f"{len(model.groups)} groups ok")
    return model, False
