"""`tie-params`: tie classes, one parameter slot and one flow accumulator each.

Declared ties (Model.ties) are validated and kept. With `detect=true` the
pass also finds untied groups whose structure *and* parameter tensor are
identical (a homogeneous HMM unrolled without ties) and ties them to the
lowest-id copy, so the layout stores the tensor once and training sums the
copies' statistics. Detection depends on parameter values, so the layout
cache keys such pipelines on a parameter hash too.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from pccompiler import ir
from pccompiler.errors import PassError
from pccompiler.ir import pcir
from pccompiler.passes.helpers.edit import ModelEdit, child_offsets
from pccompiler.passes.registry import register


def tie_classes(model: pcir.Model) -> dict[int, list[int]]:
    """owner group id -> all members (owner first) for every group with params."""
    owner = ir.tie_targets(model)
    classes: dict[int, list[int]] = defaultdict(list)
    for g in model.groups:
        if g.kind != pcir.PRODUCT:
            classes[owner[g.id]].append(g.id)
    return {k: sorted(v, key=lambda m: (m != k, m)) for k, v in classes.items()}


def _signature(model: pcir.Model, g: pcir.Group, table) -> tuple:
    """Everything two groups must share to be tied (structure and params)."""
    if g.kind == pcir.INPUT:
        return ("I", g.num_nodes, g.input.dist, model.variables[g.input.variable].num_cats)
    sizes = tuple(int(x) for x in np.diff(child_offsets(model, g)))
    edges = b""
    if g.sum.edges:
        edges = hashlib.sha256(np.ascontiguousarray(table[g.sum.edges], np.int64)).digest()
    return ("S", g.num_nodes, sizes, g.sum.pattern, g.sum.block_size, edges)


def _validate_declared(model: pcir.Model) -> None:
    tied = {x.group for x in model.ties}
    for tie in model.ties:
        g, t = model.groups[tie.group], model.groups[tie.target]
        if t.id in tied:
            raise PassError(f"group {g.id} is tied to group {t.id}, which is itself tied; "
                            "tie to the owner of the class")
        if g.kind != t.kind or g.num_nodes != t.num_nodes:
            raise PassError(f"group {g.id} ({g.name!r}) is tied to group {t.id} "
                            f"({t.name!r}) of a different kind or size")


@register("tie-params", "honour declared ties; detect=true also ties groups with identical "
          "structure and parameters (one parameter slot per tie class)",
          defaults={"detect": False}, param_dependent=lambda o: bool(o.get("detect")))
def tie_params(model: pcir.Model, ctx) -> tuple[pcir.Model, bool]:
    _validate_declared(model)
    edit = ModelEdit(model)
    new_ties: list[tuple[int, int]] = []
    if ctx.opt("detect"):
        owner = ir.tie_targets(model)
        table = edit.table
        buckets: dict[tuple, list[int]] = defaultdict(list)
        for g in model.groups:
            if g.kind == pcir.PRODUCT or owner[g.id] != g.id:
                continue
            params = g.input.params if g.kind == pcir.INPUT else g.sum.weights
            data = np.ascontiguousarray(table[params])
            key = _signature(model, g, table) + (str(data.dtype), data.shape,
                                                 hashlib.sha256(data).digest())
            buckets[key].append(g.id)
        targets = {g for members in buckets.values() for g in members[1:]}
        still_used = {x.input.params if x.kind == pcir.INPUT else x.sum.weights
                      for x in model.groups if x.id not in targets and x.kind != pcir.PRODUCT}
        tied_to_new = {m: members[0] for members in buckets.values() for m in members[1:]}
        # A detected member that owned a declared class hands its members to
        # the new owner (the remapping of `ties` below), so classes stay flat.
        for g_id, target in tied_to_new.items():
            group = edit.group(g_id)
            name = group.input.params if group.kind == pcir.INPUT else group.sum.weights
            if group.kind == pcir.INPUT:
                group.input.params = ""
            else:
                group.sum.weights = ""
            if name not in still_used:
                edit.remove(name)
                ctx.rewrites.drop(name)
            new_ties.append((g_id, target))
        if new_ties:
            ties = [(t.group, tied_to_new.get(t.target, t.target)) for t in model.ties]
            edit.ties = sorted(ties + new_ties)
    result = edit.build()
    classes = tie_classes(result)
    shared = sum(len(v) - 1 for v in classes.values())
    ctx.note(f"{sum(len(v) > 1 for v in classes.values())} tie classes, {shared} groups share "
             f"parameters ({len(new_ties)} detected)")
    return result, edit.changed
