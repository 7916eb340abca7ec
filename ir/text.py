"""The text dump of a Model or Layout, for people (`pcc dump`).

`model_info` / `layout_info` gather the facts as plain dicts (that is the
`--json` form); `dump_text` / `dump_layout_text` format them, one line per
group or partition. Totals come from tensor dims only; parameter statistics
decode one tensor per shown group, so a 100k-group model dumps in seconds and
`max_groups` keeps huge dumps short (first and last groups, plus a summary by
kind).

A model line reads

    g6   sum      4  x0..x1 (2)  <- g4  sparse 9 edges (56.2%)  w 0.05/0.44/0.91

i.e. id, kind, num_nodes, scope, children, edge pattern and density, then the
tie target or a parameter summary (min/mean/max; entropy for categorical).
"""

from __future__ import annotations

import json
import math

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.helpers import TensorTable, group_edge_count
from pccompiler.ir.nodes import node_counts

KIND = {pcir.INPUT: "input", pcir.PRODUCT: "product", pcir.SUM: "sum"}
DIST = {pcir.CATEGORICAL_DIST: "categorical", pcir.BERNOULLI_DIST: "bernoulli",
        pcir.GAUSSIAN_DIST: "gaussian"}
PATTERN = {pcir.DENSE: "dense", pcir.BLOCK_SPARSE: "block-sparse", pcir.SPARSE: "sparse"}


def scope_summary(scope) -> str:
    """`x0..x15 (16)` for a contiguous range, `{x3,x7}` for a short set,
    `{x1,x3,x4,...,x40} (12)` otherwise."""
    n = len(scope)
    if n == 0:
        return "{}"
    first, last = scope[0], scope[n - 1]
    if n == 1:
        return f"x{first}"
    if last - first + 1 == n:
        return f"x{first}..x{last} ({n})"
    if n <= 4:
        return "{" + ",".join(f"x{v}" for v in scope) + "}"
    return "{" + ",".join(f"x{v}" for v in scope[:3]) + f",...,x{last}}} ({n})"


def _dims_count(table: TensorTable, name: str) -> int:
    if name not in table:
        return 0
    return math.prod(table.proto(name).dims)


def _first_dim(table: TensorTable, name: str) -> int:
    dims = table.proto(name).dims if name in table else []
    return int(dims[0]) if len(dims) else 0


def _sum_edges(model: pcir.Model, g: pcir.Group, table: TensorTable) -> dict:
    """Edge count, pattern text and density of a sum group (from dims only)."""
    n = g.num_nodes
    cols = sum(model.groups[c].num_nodes for c in g.sum.children if 0 <= c < len(model.groups))
    full = n * cols
    pattern = g.sum.pattern
    edges = group_edge_count(model, g, {g.sum.edges: (_first_dim(table, g.sum.edges),)})
    if pattern == pcir.DENSE:
        text = f"dense {n}x{cols}"
    elif pattern == pcir.BLOCK_SPARSE:
        b = max(g.sum.block_size, 1)
        blocks = _first_dim(table, g.sum.edges)
        all_blocks = (n // b) * (cols // b)
        text = (f"block-sparse B={b} {blocks}/{all_blocks} blocks "
                f"({100.0 * blocks / max(all_blocks, 1):.1f}%)")
    else:
        text = f"sparse {edges} edges ({100.0 * edges / max(full, 1):.1f}%)"
    return {"pattern": PATTERN.get(pattern, str(pattern)), "block_size": g.sum.block_size,
            "edges": edges, "columns": cols, "density": edges / max(full, 1), "text": text}


def _stats(array: np.ndarray) -> dict:
    if array.size == 0:
        return {}
    return {"min": float(array.min()), "mean": float(array.mean(dtype=np.float64)),
            "max": float(array.max())}


def _param_summary(model: pcir.Model, g: pcir.Group, table: TensorTable) -> dict:
    name = g.input.params if g.kind == pcir.INPUT else g.sum.weights
    if g.kind == pcir.PRODUCT or name not in table:
        return {}
    try:
        values = table[name]
    except Exception as exc:  # noqa: BLE001 - a dump shows what it can
        return {"error": str(exc)}
    if g.kind == pcir.SUM:
        return {"weights": _stats(values)}
    if g.input.dist == pcir.CATEGORICAL_DIST and values.ndim == 2:
        p = values.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return {"entropy": _stats(entropy), "max_entropy": math.log(max(values.shape[1], 1))}
    if g.input.dist == pcir.GAUSSIAN_DIST and values.ndim == 2 and values.shape[1] == 2:
        return {"mean": _stats(values[:, 0]), "std": _stats(values[:, 1])}
    return {"p": _stats(values)}


def _group_info(model: pcir.Model, g: pcir.Group, table: TensorTable, ties: dict,
                edges: dict | None) -> dict:
    info = {"id": g.id, "name": g.name, "kind": KIND.get(g.kind, str(g.kind)),
            "num_nodes": g.num_nodes, "scope": scope_summary(g.scope), "scope_size": len(g.scope)}
    if g.kind == pcir.INPUT:
        info["variable"] = g.input.variable
        info["dist"] = DIST.get(g.input.dist, str(g.input.dist))
    elif g.kind == pcir.PRODUCT:
        info["children"] = list(g.product.children)
    elif g.kind == pcir.SUM:
        info["children"] = list(g.sum.children)
        info["edges"] = edges
    if g.id in ties:
        info["tied_to"] = ties[g.id]
    else:
        info["params"] = _param_summary(model, g, table)
    return info


def _fmt_stats(label: str, s: dict) -> str:
    if not s:
        return ""
    return f"{label} {s['min']:.3g}/{s['mean']:.3g}/{s['max']:.3g}"


def _group_line(info: dict) -> str:
    kind = info["kind"]
    if kind == "input":
        what = f"{info['dist']} x{info['variable']}"
    else:
        kids = info.get("children", [])
        shown = ",".join(f"g{c}" for c in kids[:4]) + (",..." if len(kids) > 4 else "")
        what = f"<- {shown}" + (f" ({len(kids)})" if len(kids) > 4 else "")
        if kind == "sum":
            what += "  " + info["edges"]["text"]
    tail = ""
    if "tied_to" in info:
        tail = f"tied -> g{info['tied_to']}"
    else:
        p = info.get("params", {})
        if "weights" in p:
            tail = _fmt_stats("w min/mean/max", p["weights"])
        elif "entropy" in p:
            tail = _fmt_stats("H(nats)", p["entropy"]) + f" of {p['max_entropy']:.3g}"
        elif "mean" in p:
            tail = _fmt_stats("mean", p["mean"]) + "  " + _fmt_stats("std", p["std"])
        elif "p" in p:
            tail = _fmt_stats("p", p["p"])
        elif "error" in p:
            tail = f"params unreadable: {p['error']}"
    name = f'  "{info["name"]}"' if info["name"] else ""
    return (f"g{info['id']:<6} {kind:<8}{info['num_nodes']:>8}  {info['scope']:<18} "
            f"{what}  {tail}".rstrip() + name)


def _shown(count: int, max_groups: int | None) -> tuple[list[int], int]:
    if max_groups is None or count <= max_groups:
        return list(range(count)), 0
    head = (max_groups + 1) // 2
    tail = max_groups - head
    return list(range(head)) + list(range(count - tail, count)), count - max_groups


def model_info(model: pcir.Model, max_groups: int | None = None) -> dict:
    """Everything `pcc dump` shows about a Model, as a JSON-ready dict."""
    if model.HasField("nodes"):
        return _node_model_info(model)
    table = TensorTable(model.tensors)
    ties = {t.group: t.target for t in model.ties}
    by_kind: dict[str, dict] = {}
    sum_edges: dict[int, dict] = {}
    params = 0
    for g in model.groups:
        kind = KIND.get(g.kind, str(g.kind))
        row = by_kind.setdefault(kind, {"groups": 0, "nodes": 0, "edges": 0})
        row["groups"] += 1
        row["nodes"] += g.num_nodes
        if g.kind == pcir.SUM:
            sum_edges[g.id] = _sum_edges(model, g, table)
            row["edges"] += sum_edges[g.id]["edges"]
        elif g.kind == pcir.PRODUCT:
            row["edges"] += group_edge_count(model, g, {})
        if g.id not in ties and g.kind != pcir.PRODUCT:
            params += _dims_count(table, g.input.params if g.kind == pcir.INPUT
                                  else g.sum.weights)
    order, omitted = _shown(len(model.groups), max_groups)
    groups = [_group_info(model, model.groups[i], table, ties, sum_edges.get(i)) for i in order]
    totals = {"variables": len(model.variables), "groups": len(model.groups),
              "nodes": sum(r["nodes"] for r in by_kind.values()),
              "edges": sum(r["edges"] for r in by_kind.values()),
              "sum_edges": by_kind.get("sum", {}).get("edges", 0),
              "product_edges": by_kind.get("product", {}).get("edges", 0), "parameters": params,
              "roots": list(model.roots), "ties": len(model.ties), "tensors": len(model.tensors)}
    return {"kind": "model", "name": model.name, "ir_version": model.ir_version,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "metadata": dict(model.metadata), "totals": totals, "by_kind": by_kind,
            "groups": groups, "omitted_groups": omitted}


def _node_model_info(model: pcir.Model) -> dict:
    """model_info of a node-form Model: totals and per-kind counts of its
    NodeCircuit (no groups to list)."""
    c = node_counts(model)
    edges = {"input": 0, "product": c["product_edges"], "sum": c["sum_edges"]}
    by_kind = {k: {"groups": 0, "nodes": c[f"{k}_nodes"], "edges": edges[k]}
               for k in ("input", "product", "sum")}
    totals = {"variables": len(model.variables), "groups": 0, "nodes": c["nodes"],
              "edges": c["edges"], "sum_edges": c["sum_edges"],
              "product_edges": c["product_edges"],
              "parameters": c["sum_params"] + c["input_params"],
              "roots": [int(r) for r in model.nodes.roots], "ties": 0,
              "tensors": len(model.tensors)}
    return {"kind": "model", "name": model.name, "ir_version": model.ir_version,
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "metadata": dict(model.metadata), "totals": totals, "by_kind": by_kind,
            "groups": [], "omitted_groups": 0, "form": "nodes"}


def edges_text(totals: dict) -> str:
    """"E edges (S sum, P product)": how build, dump, stat and verify say it."""
    return (f"{totals['edges']:,} edges ({totals['sum_edges']:,} sum, "
            f"{totals['product_edges']:,} product)")


def dump_text(model: pcir.Model, max_groups: int | None = None) -> str:
    """The people-readable dump of a Model (see the module docstring)."""
    info = model_info(model, max_groups)
    t = info["totals"]
    lines = [f"model {info['name']!r}  ir_version {info['ir_version']}  producer "
             f"{info['producer']}",
             f"  {t['variables']} variables, {t['groups']} groups, {t['nodes']} nodes, "
             f"{edges_text(t)}, {t['parameters']} parameters, roots {t['roots']}, "
             f"{t['ties']} ties, {t['tensors']} tensors"]
    lines += [f"  metadata {k} = {v if len(v) <= 100 else v[:97] + '...'}"
              for k, v in sorted(info["metadata"].items())]
    lines.append("")
    if info.get("form") == "nodes":
        k = info["by_kind"]
        lines.append(f"node circuit: {t['nodes']} nodes ({k['input']['nodes']} input, "
                     f"{k['product']['nodes']} product, {k['sum']['nodes']} sum), "
                     f"{edges_text(t)}, scopes as intervals of one variable order, "
                     f"roots {t['roots']}")
    head = len(info["groups"]) - (max_groups // 2 if info["omitted_groups"] else 0)
    for i, g in enumerate(info["groups"]):
        if info["omitted_groups"] and i == head:
            lines.append(f"... {info['omitted_groups']} groups omitted ...")
        lines.append(_group_line(g))
    if info["omitted_groups"]:
        lines.append("")
        lines.append("by kind:")
        for kind, row in info["by_kind"].items():
            lines.append(f"  {kind:<8} {row['groups']:>8} groups {row['nodes']:>12} nodes "
                         f"{row['edges']:>14} edges")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- layout

def _partition_info(kind: str, part, table: TensorTable) -> dict:
    info: dict = {"kind": kind}
    if kind == "input":
        info.update(dist=DIST.get(part.dist, str(part.dist)), slot_start=part.slot_start,
                    num_nodes=part.num_nodes, params_per_node=part.params_per_node,
                    has_ties=part.has_ties)
    elif kind == "product":
        info.update(slot_start=part.slot_start, num_nodes=part.num_nodes,
                    fan_in=part.num_children)
    elif kind == "sum":
        info.update(block_size=part.block_size, blocks=part.num_blocks,
                    max_fan_in=part.max_children, kernel=part.kernel,
                    kernel_options=dict(part.kernel_options), has_ties=part.has_ties)
        if part.block_num_children in table:
            counts = table[part.block_num_children]
            if counts.size:
                info["mean_fan_in"] = float(counts.mean())
                info["padding"] = 1.0 - float(counts.sum()) / max(counts.size *
                                                                   part.max_children, 1)
    else:
        info.update(child_block_size=part.child_block_size,
                    parent_block_size=part.parent_block_size, blocks=part.num_blocks,
                    max_parents=part.max_parents, kernel=part.kernel,
                    kernel_options=dict(part.kernel_options))
    return info


def layout_info(layout: pcir.Layout) -> dict:
    """Everything `pcc dump --layout` shows about a Layout, as a dict."""
    table = TensorTable(layout.tensors)
    layers = []
    for i, layer in enumerate(layout.layers):
        parts = [_partition_info("input", p, table) for p in layer.input_partitions]
        parts += [_partition_info("product", p, table) for p in layer.product_partitions]
        parts += [_partition_info("sum", p, table) for p in layer.sum_partitions]
        parts += [_partition_info("sum-backward", p, table)
                  for p in layer.sum_backward_partitions]
        layers.append({"index": i, "kind": pcir.LayerKind.Name(layer.kind).removesuffix(
            "_LAYER").lower(), "level": layer.level, "slot_start": layer.slot_start,
            "num_slots": layer.num_slots, "groups": list(layer.groups), "partitions": parts})
    return {"kind": "layout", "ir_version": layout.ir_version, "model_hash": layout.model_hash,
            "pipeline": layout.pipeline, "compiler_version": layout.compiler_version,
            "num_slots": layout.num_slots, "num_sum_params": layout.num_sum_params,
            "num_input_params": layout.num_input_params,
            "max_block_size": layout.max_block_size, "num_vars": layout.num_vars,
            "root_group": layout.root_group, "root_slot": layout.root_slot,
            "placements": len(layout.placements), "metadata": dict(layout.metadata),
            "node_form": layout.HasField("node_placement"), "layers": layers}


def _partition_line(p: dict) -> str:
    k = p["kind"]
    if k == "input":
        return (f"input {p['dist']} slots {p['slot_start']}+{p['num_nodes']} "
                f"params/node {p['params_per_node']}" + (" ties" if p["has_ties"] else ""))
    if k == "product":
        return f"product slots {p['slot_start']}+{p['num_nodes']} fan-in {p['fan_in']}"
    opts = ",".join(f"{a}={b}" for a, b in sorted(p["kernel_options"].items()))
    kernel = f" kernel={p['kernel'] or '-'}" + (f"{{{opts}}}" if opts else "")
    if k == "sum":
        mean = f" mean {p['mean_fan_in']:.1f} padding {100 * p['padding']:.1f}%" \
            if "mean_fan_in" in p else ""
        return (f"sum B={p['block_size']} blocks {p['blocks']} fan-in max {p['max_fan_in']}"
                f"{mean}{kernel}" + (" ties" if p["has_ties"] else ""))
    return (f"sum-backward child B={p['child_block_size']} parent B={p['parent_block_size']} "
            f"blocks {p['blocks']} parents max {p['max_parents']}{kernel}")


def dump_layout_text(layout: pcir.Layout) -> str:
    """The people-readable dump of a Layout: header, then layers and partitions."""
    info = layout_info(layout)
    lines = [f"layout ir_version {info['ir_version']}  model {info['model_hash'][:16]}  "
             f"compiler {info['compiler_version'] or '-'}",
             f"  pipeline {info['pipeline'] or '-'}",
             f"  {info['num_slots']} slots, {info['num_sum_params']} sum params, "
             f"{info['num_input_params']} input params, max block {info['max_block_size']}, "
             f"{info['num_vars']} variables, "
             + ("node placement (node form), root" if info["node_form"] else
                f"{info['placements']} placements, root g{info['root_group']}")
             + f" slot {info['root_slot']}", ""]
    for layer in info["layers"]:
        groups = layer["groups"]
        shown = ",".join(f"g{g}" for g in groups[:6]) + (",..." if len(groups) > 6 else "")
        lines.append(f"layer {layer['index']:<4} {layer['kind']:<8} level {layer['level']:<4} "
                     f"slots {layer['slot_start']}+{layer['num_slots']}  groups "
                     f"{len(groups)} [{shown}]")
        lines += ["    " + _partition_line(p) for p in layer["partitions"]]
    return "\n".join(lines) + "\n"


def dump_json(msg: pcir.Model | pcir.Layout, max_groups: int | None = None) -> str:
    """The same facts as the text dump, as indented JSON."""
    info = layout_info(msg) if isinstance(msg, pcir.Layout) else model_info(msg, max_groups)
    return json.dumps(info, indent=1, sort_keys=False) + "\n"


__all__ = ["dump_text", "dump_layout_text", "dump_json", "model_info", "layout_info",
           "scope_summary"]
