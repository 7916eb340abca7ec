"""Text of a Model or Layout for `--print-after`: the ir.text dump when it
exists, else a compact summary (one line per group / layer / partition)."""

from __future__ import annotations


from pccompiler import ir
from pccompiler.ir import pcir

_KIND = {pcir.INPUT: "input", pcir.PRODUCT: "product", pcir.SUM: "sum"}
_PATTERN = {pcir.DENSE: "dense", pcir.BLOCK_SPARSE: "block_sparse", pcir.SPARSE: "sparse"}


def _ir_text(obj):
    try:
        from pccompiler.ir import text
    except ImportError:
        return None
    names = ("dump_text",) if isinstance(obj, pcir.Model) else ("dump_layout_text",)
    for name in names:
        fn = getattr(text, name, None)
        if callable(fn):
            try:
                return fn(obj)
            except Exception:       # a dump of the other kind of message
                continue
    return None


def summary(obj) -> str:
    if isinstance(obj, pcir.Model):
        table = ir.tensor_table(obj)
        tie = ir.tie_targets(obj)
        lines = [f"model {obj.name!r}: {len(obj.variables)} vars, {len(obj.groups)} groups, "
                 f"roots {list(obj.roots)}"]
        for g in obj.groups:
            extra = ""
            if g.kind == pcir.SUM:
                extra = f" {_PATTERN.get(g.sum.pattern, '?')} children={list(g.sum.children)}"
                if g.sum.pattern == pcir.BLOCK_SPARSE:
                    extra += f" block={g.sum.block_size} blocks={table.proto(g.sum.edges).dims[0]}"
                elif g.sum.pattern == pcir.SPARSE:
                    extra += f" edges={table.proto(g.sum.edges).dims[0]}"
            elif g.kind == pcir.PRODUCT:
                extra = f" children={list(g.product.children)}"
            else:
                extra = f" var={g.input.variable} dist={pcir.Distribution.Name(g.input.dist)}"
            if tie[g.id] != g.id:
                extra += f" tied->g{tie[g.id]}"
            lines.append(f"  g{g.id} {_KIND[g.kind]} n={g.num_nodes}{extra}")
        return "\n".join(lines)
    lines = [f"layout: {obj.num_slots} slots, {obj.num_sum_params} sum params, "
             f"{obj.num_input_params} input params, root slot {obj.root_slot}"]
    for i, layer in enumerate(obj.layers):
        lines.append(f"  layer {i} {pcir.LayerKind.Name(layer.kind)} level={layer.level} "
                     f"slots=[{layer.slot_start}, +{layer.num_slots}) groups={list(layer.groups)}")
        for p in layer.input_partitions:
            lines.append(f"    input {pcir.Distribution.Name(p.dist)} n={p.num_nodes} "
                         f"ppn={p.params_per_node}")
        for p in layer.product_partitions:
            lines.append(f"    product n={p.num_nodes} k={p.num_children}")
        for p in layer.sum_partitions:
            lines.append(f"    sum {p.kernel} block={p.block_size} blocks={p.num_blocks} "
                         f"max_children={p.max_children} {dict(p.kernel_options)}")
        for p in layer.sum_backward_partitions:
            lines.append(f"    sum-backward cblock={p.child_block_size} "
                         f"pblock={p.parent_block_size} blocks={p.num_blocks} "
                         f"max_parents={p.max_parents}")
    return "\n".join(lines)


def dump(obj) -> str:
    text = _ir_text(obj)
    return text if text is not None else summary(obj)
