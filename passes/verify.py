"""`verify`: run the IR checker on the input Model (changes nothing)."""

from __future__ import annotations

from pccompiler.ir import pcir
from pccompiler.ir.checker import check
from pccompiler.passes.registry import register


@register("verify", "check every IR invariant of the input Model (ir.check)")
def verify(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    """The checker's decoded tensors stay in ctx.analysis["checked_tensors"]
    with the Model they belong to (see checked_tensors)."""
    decoded: dict = {}
    check(model, decoded=decoded)
    ctx.analysis["checked_tensors"] = (model, decoded)
    ctx.note(f"{model.nodes.num_nodes} nodes ok" if model.HasField("nodes")
             else f"{len(model.groups)} groups ok")
    return model, False


def checked_tensors(model: pcir.Model, ctx) -> dict | None:
    """name -> numpy of `model`'s tensors as the verify pass of this compile
    decoded them, or None (no verify ran, or it checked another Model): a
    node pass reads them instead of decoding the Model's tensors again (a
    copy of every array: ~0.5 GB for a 10^6-node SDD). Keyed by the Model
    object: a pass that edits that Model in place between verify and its
    reader would leave them stale (none does: the node pipeline is
    verify, layerize, layout)."""
    held = ctx.analysis.get("checked_tensors")
    return held[1] if held is not None and held[0] is model else None
