"""`pcc dot`: the group graph of a Model as Graphviz DOT.

One box per group (kind, size, scope; tie targets as dashed edges) and one
arrow per child -> parent link, readable up to a few hundred groups. Beyond
`max_groups` the graph is summarised by level: one box per (level, kind)
with its group and node counts, and one arrow per linked pair of boxes
labelled with the number of group links.
"""

from __future__ import annotations

from collections import Counter

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.text import KIND, scope_summary
from pccompiler.tools.stat import group_depths

_SHAPE = {pcir.INPUT: "ellipse", pcir.PRODUCT: "box", pcir.SUM: "diamond"}


def _quote(text: str) -> str:
    """A DOT string literal; real newlines become line breaks in the label."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _children(g: pcir.Group):
    return g.sum.children if g.kind == pcir.SUM else (
        g.product.children if g.kind == pcir.PRODUCT else [])


def to_dot(model: pcir.Model, max_groups: int = 300) -> str:
    """DOT text of the group graph (summarised by level past `max_groups`)."""
    lines = [f"digraph {_quote(model.name or 'pc')} {{", "  rankdir=BT;",
             "  node [fontname=Helvetica, fontsize=10];"]
    if len(model.groups) <= max_groups:
        for g in model.groups:
            label = f"g{g.id} {KIND.get(g.kind, '?')} {g.num_nodes}\n{scope_summary(g.scope)}"
            if g.name:
                label += f"\n{g.name}"
            lines.append(f"  g{g.id} [shape={_SHAPE.get(g.kind, 'box')}, label={_quote(label)}];")
        for g in model.groups:
            lines += [f"  g{c} -> g{g.id};" for c in _children(g)]
        lines += [f"  g{t.group} -> g{t.target} [style=dashed, label=tie, constraint=false];"
                  for t in model.ties]
        lines += [f"  g{r} [penwidth=2];" for r in model.roots]
    else:
        depth = group_depths(model)
        boxes: Counter = Counter()
        nodes: Counter = Counter()
        links: Counter = Counter()
        for g in model.groups:
            key = (int(depth[g.id]), g.kind)
            boxes[key] += 1
            nodes[key] += g.num_nodes
            for c in _children(g):
                links[((int(depth[c]), model.groups[c].kind), key)] += 1
        name = {key: f"L{key[0]}_{KIND.get(key[1], 'x')}" for key in boxes}
        lines.append(f"  label={_quote(f'{len(model.groups)} groups, summarised by level')};")
        for key in sorted(boxes):
            label = f"level {key[0]} {KIND.get(key[1], '?')}\n{boxes[key]} groups, " \
                    f"{nodes[key]} nodes"
            lines.append(f"  {name[key]} [shape={_SHAPE.get(key[1], 'box')}, "
                         f"label={_quote(label)}];")
        for (src, dst), count in sorted(links.items()):
            lines.append(f"  {name[src]} -> {name[dst]} [label=\"{count}\"];")
    lines.append("}")
    return "\n".join(lines) + "\n"
