"""`verify`: run the IR checker on the input Model (changes nothing)."""

from __future__ import annotations

from pccompiler.ir import pcir
from pccompiler.passes.registry import register
from pccompiler.passes.validate import check_model


@register("verify", "check every IR invariant of the input Model (ir.check)")
def verify(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    ran = check_model(model)
    ctx.note(f"{len(model.groups)} groups ok" if ran else "ir.check not available: skipped")
    return model, False
