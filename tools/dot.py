"""`pcc dot`: the group graph of a Model as Graphviz DOT.

One box per group (kind, size, scope; tie targets as dashed edges) and one
arrow per child -> parent link, readable up to a few hundred groups. Beyond
`max_groups` the graph is summarised by level: one box per (level, kind)
with its group and node counts, and one arrow per linked pair of boxes
labelled with the number of group links.

A node-form Model (a logic circuit stored node by node, ir/nodes.py) is
drawn node by node the same way: one vertex per node (a literal as
`name=value`, a product as x, a sum as + with its edge weights) up to the
limit, else one box per (level, kind) with node counts and edge counts.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.nodes import is_node_model, node_arrays
from pccompiler.ir.text import KIND, scope_summary
from pccompiler.passes.helpers.node_levels import node_levels
from pccompiler.tools.stat import group_depths

_SHAPE = {pcir.INPUT: "ellipse", pcir.PRODUCT: "box", pcir.SUM: "diamond"}


def _quote(text: str) -> str:
    """A DOT string literal; real newlines become line breaks in the label."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _children(g: pcir.Group):
    return g.sum.children if g.kind == pcir.SUM else (
        g.product.children if g.kind == pcir.PRODUCT else [])


def _input_label(model: pcir.Model, var: int, row: np.ndarray) -> str:
    """`name=value` for an indicator row, else the variable's name."""
    name = model.variables[var].name or f"x{var}"
    hot = np.flatnonzero(row)
    return f"{name}={hot[0]}" if len(hot) == 1 and row[hot[0]] == 1 else name


def _node_lines(model: pcir.Model, max_nodes: int) -> list[str]:
    """The node-form graph: every node when there are at most `max_nodes`,
    else the (level, kind) summary."""
    a = node_arrays(model)
    n = a.num_nodes
    parent = a.parents()
    if n > max_nodes:
        level = node_levels(a)
        key = level.astype(np.int64) * 4 + a.kind
        boxes, counts = np.unique(key, return_counts=True)
        pairs, links = np.unique(np.stack([key[a.child_ids], key[parent]]), axis=1,
                                 return_counts=True)
        name = {int(k): f"L{k // 4}_{KIND.get(int(k % 4), 'x')}" for k in boxes}
        lines = [f"  label={_quote(f'{n} nodes, {len(a.child_ids)} edges, summarised by level')};"]
        for k, c in zip(boxes.tolist(), counts.tolist()):
            label = f"level {k // 4} {KIND.get(k % 4, '?')}\n{c} nodes"
            lines.append(f"  {name[k]} [shape={_SHAPE.get(k % 4, 'box')}, "
                         f"label={_quote(label)}];")
        lines += [f"  {name[int(s)]} -> {name[int(d)]} [label=\"{c}\"];"
                  for (s, d), c in zip(pairs.T, links)]
        return lines
    input_row = np.cumsum(a.kind == pcir.INPUT) - 1
    lines = []
    for i in range(n):
        kind = int(a.kind[i])
        if kind == pcir.INPUT:
            j = int(input_row[i])
            label = _input_label(model, int(a.input_vars[j]), a.input_params[j])
        else:
            label = "x" if kind == pcir.PRODUCT else "+"
        lines.append(f"  n{i} [shape={_SHAPE.get(kind, 'box')}, label={_quote(label)}];")
    sum_edge = a.kind[parent] == pcir.SUM
    weight = np.zeros(len(a.child_ids))
    weight[sum_edge] = a.sum_weights
    for e, (c, p) in enumerate(zip(a.child_ids.tolist(), parent.tolist())):
        label = f" [label=\"{weight[e]:.3g}\"]" if sum_edge[e] and weight[e] != 1 else ""
        lines.append(f"  n{c} -> n{p}{label};")
    lines += [f"  n{r} [penwidth=2];" for r in a.roots.tolist()]
    return lines


def to_dot(model: pcir.Model, max_groups: int = 300) -> str:
    """DOT text of the group graph (summarised by level past `max_groups`);
    of the node graph for a node-form Model (`max_groups` then counts nodes)."""
    lines = [f"digraph {_quote(model.name or 'pc')} {{", "  rankdir=BT;",
             "  node [fontname=Helvetica, fontsize=10];"]
    if is_node_model(model):
        lines += _node_lines(model, max_groups)
    elif len(model.groups) <= max_groups:
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
