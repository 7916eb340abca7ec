"""`pcc stat`: the numbers of a Model or Layout file.

Model: totals (groups, nodes, edges, parameters), depth (longest chain of
groups from an input to a root), a histogram of group sizes in powers of two,
and counts by kind and edge pattern. Layout: layers by kind, partitions, sum
blocks by block size and their padding (the block sparsity the kernels see).
Everything is computed from group headers and tensor dims, plus one pass over
each sum partition's fan-in array.
"""

from __future__ import annotations

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.helpers import TensorTable
from pccompiler.ir.nodes import node_arrays
from pccompiler.ir.text import model_info
from pccompiler.passes.helpers.node_levels import node_levels


def group_depths(model: pcir.Model) -> np.ndarray:
    """Level of each group: 0 for inputs, 1 + the deepest child otherwise."""
    depth = np.zeros(len(model.groups), dtype=np.int64)
    for g in model.groups:
        kids = g.sum.children if g.kind == pcir.SUM else g.product.children
        if g.kind != pcir.INPUT and len(kids):
            depth[g.id] = 1 + depth[np.asarray(kids)].max()
    return depth


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Counts of group sizes in power-of-two buckets ("1", "2-3", "4-7", ...)."""
    if sizes.size == 0:
        return {}
    buckets = np.floor(np.log2(np.maximum(sizes, 1))).astype(np.int64)
    counts = np.bincount(buckets)
    out = {}
    for b in np.flatnonzero(counts):
        lo, hi = 1 << int(b), (1 << (int(b) + 1)) - 1
        out[str(lo) if lo == hi else f"{lo}-{hi}"] = int(counts[b])
    return out


def model_stats(model: pcir.Model) -> dict:
    info = model_info(model, max_groups=0)
    if info.get("form") == "nodes":
        depth = int(node_levels(node_arrays(model)).max(initial=0)) if model.nodes.num_nodes else 0
        return {"kind": "model", "name": model.name, "totals": info["totals"], "depth": depth,
                "by_kind": info["by_kind"], "sum_patterns": {}, "group_sizes": {},
                "form": "nodes"}
    patterns: dict[str, int] = {}
    for g in model.groups:
        if g.kind == pcir.SUM:
            name = {pcir.DENSE: "dense", pcir.BLOCK_SPARSE: "block-sparse",
                    pcir.SPARSE: "sparse"}.get(g.sum.pattern, "?")
            patterns[name] = patterns.get(name, 0) + 1
    sizes = np.fromiter((g.num_nodes for g in model.groups), dtype=np.int64,
                        count=len(model.groups))
    depth = group_depths(model)
    return {"kind": "model", "name": model.name, "totals": info["totals"],
            "depth": int(depth.max()) if depth.size else 0, "by_kind": info["by_kind"],
            "sum_patterns": patterns, "group_sizes": size_histogram(sizes)}


def layout_stats(layout: pcir.Layout) -> dict:
    table = TensorTable(layout.tensors)
    layers: dict[str, int] = {}
    partitions: dict[str, int] = {}
    blocks: dict[int, dict] = {}
    for layer in layout.layers:
        kind = pcir.LayerKind.Name(layer.kind).removesuffix("_LAYER").lower()
        layers[kind] = layers.get(kind, 0) + 1
        for field in ("input_partitions", "product_partitions", "sum_partitions",
                      "sum_backward_partitions"):
            if len(getattr(layer, field)):
                partitions[field] = partitions.get(field, 0) + len(getattr(layer, field))
        for p in layer.sum_partitions:
            row = blocks.setdefault(p.block_size, {"blocks": 0, "child_entries": 0,
                                                   "padded_entries": 0})
            row["blocks"] += p.num_blocks
            row["padded_entries"] += p.num_blocks * p.max_children
            if p.block_num_children in table:
                row["child_entries"] += int(table[p.block_num_children].sum())
    for row in blocks.values():
        row["padding"] = 1.0 - row["child_entries"] / max(row["padded_entries"], 1)
    return {"kind": "layout", "num_slots": layout.num_slots,
            "num_sum_params": layout.num_sum_params,
            "num_input_params": layout.num_input_params, "layers": layers,
            "num_layers": len(layout.layers), "partitions": partitions,
            "sum_blocks_by_block_size": {str(k): v for k, v in sorted(blocks.items())}}


def format_stats(stats: dict) -> str:
    """Human-readable form of model_stats / layout_stats."""
    lines = []
    if stats["kind"] == "model":
        t = stats["totals"]
        lines.append(f"model {stats['name']!r}")
        for key in ("variables", "groups", "nodes", "edges", "sum_edges", "product_edges",
                    "parameters", "ties", "tensors"):
            lines.append(f"  {key:<12} {t[key]:>14}")
        lines.append(f"  {'depth':<12} {stats['depth']:>14}")
        lines.append("by kind:")
        for kind, row in stats["by_kind"].items():
            lines.append(f"  {kind:<8} {row['groups']:>8} groups {row['nodes']:>12} nodes "
                         f"{row['edges']:>14} edges")
        if stats["sum_patterns"]:
            lines.append("sum edge patterns: " + ", ".join(
                f"{k} {v}" for k, v in stats["sum_patterns"].items()))
        if stats.get("form") == "nodes":
            lines.append("node form: no groups (depth = longest path in nodes)")
        else:
            lines.append("group sizes (num_nodes: groups):")
            lines += [f"  {k:>15}: {v}" for k, v in stats["group_sizes"].items()]
    else:
        lines.append(f"layout: {stats['num_layers']} layers, {stats['num_slots']} slots, "
                     f"{stats['num_sum_params']} sum params, {stats['num_input_params']} "
                     "input params")
        lines.append("  layers: " + ", ".join(f"{k} {v}" for k, v in stats["layers"].items()))
        lines.append("  partitions: " + ", ".join(
            f"{k.removesuffix('_partitions')} {v}" for k, v in stats["partitions"].items()))
        for b, row in stats["sum_blocks_by_block_size"].items():
            lines.append(f"  sum blocks B={b}: {row['blocks']} blocks, padding "
                         f"{100 * row['padding']:.1f}% of {row['padded_entries']} child entries")
    return "\n".join(lines) + "\n"


__all__ = ["model_stats", "layout_stats", "format_stats", "group_depths", "size_histogram"]
