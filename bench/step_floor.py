"""The floor of a pruned training step: what pruning sum edges cannot remove.

    PYTHONPATH=.:bench python bench/step_floor.py --model OUT/step_model.json \
        --dense OUT/L128_k1.0.pcir --out OUT

Why: issue #18 asks pruned HCLTs to train at 0.6 / 0.35 / 0.2 of the dense
step; pruning sum edges leaves every product and input node (and every sum
node) in place. From bench/step_model.py's per-kernel model of the dense
step (its 'after' and 'fused' circuits, the first two of --model) this
states, as fractions of the dense step:

* products + inputs: the modeled time of the product, input and categorical
  kernels (launches included), unfused; with fuse_products the product
  kernels left plus what folding them into the sum loads added to the sum
  kernels (fused minus unfused sum-kernel time);
* + the sum layers' node I/O: each sum row written or read and each child
  row read once per pass (forward: children in, rows out; node flows: log
  ratios and child values in, child flows out; parameter flows: log ratios
  and child values in), batch x 4 bytes at the model's bandwidth, plus three
  launches per sum layer: what a sum kernel costs with no weight at all.

With --pruned (pruned circuits whose 'after' rows are in --model), per
circuit the step of an EDGE-PROPORTIONAL sum kernel, one that no storage
or kernel of this compiler has (bench/results/sparse_big-cpu-2026-12-07.md):
its own products + inputs (dead nodes gone), its sum layers' node I/O as
above (its own rows and children), plus per real edge: the weight read once
per 64-sample batch tile in each of the three passes, 20 EM bytes, and one
gather of a child value (forward, parameter flows) or parent ratio (node
flows) per sample and pass from shared memory at R_GATHER, the
CSR-in-shared-memory form (children of a batch tile loaded once, each row's
real edges gathered): what pruning could save at best with such a kernel.

Writes step_floor.md into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from step_model import BW, LAUNCH_S, compile_triton

R_GATHER = 7.4e12   # 4-byte shared-memory loads/s (H100: 132 SMs x 32 banks x 1.755 GHz)
BATCH_TILE = 64     # samples per program: each weight read once per tile and pass

FLOOR_KERNELS = ("product_fwd_kernel", "product_bwd_kernel", "input_fwd_kernel",
                 "input_bwd_kernel", "categorical_flow_dot_kernel", "categorical_em_kernel")


def kernel_ms(summary: dict, names) -> float:
    return sum(d["time_s"] for k, d in summary["kernels"].items()
               if k.split(" (")[0] in names) * 1e3


def sum_ms(summary: dict) -> float:
    return sum(d["time_s"] for k, d in summary["kernels"].items()
               if k.startswith("sum_") or k.startswith("log_ratio")) * 1e3


def sum_io_ms(path: str, batch: int) -> tuple[float, int, int, int]:
    """(ms, sum rows, child rows, sum layers) of the sum layers' node I/O floor."""
    from pccompiler.backends.triton.writers import block_rows, child_rows
    plan = compile_triton(path).engine.fast_plan
    rows = children = layers = 0
    for lp in plan.layers:
        if not lp.sums:
            continue
        layers += 1
        for part in lp.sums:
            rows += block_rows(part.block_slots.numpy(), part.block_size).size
            children += np.unique(child_rows(part.child_slots.numpy())).size
    reads = 3 * rows + 4 * children          # fwd rows + children, bwd rows + 2 children, pflow
    return (reads * batch * 4 / BW + 3 * layers * LAUNCH_S) * 1e3, rows, children, layers


def real_edges(path: str) -> int:
    """Sum edges with a non-zero weight of a .pcir (padding excluded)."""
    from pccompiler.ir import pcir
    from pccompiler.train.prune_grow import sum_edge_count
    model = pcir.Model()
    model.ParseFromString(Path(path).read_bytes())
    return sum_edge_count(model)


def edge_ms(edges: int, batch: int) -> float:
    """The per-edge part of the edge-proportional sum kernel (module docstring):
    weight reads (3 passes, once per batch tile) and EM bytes at BW, or the
    3 x batch shared-memory gathers per edge at R_GATHER, whichever is longer."""
    weight_bytes = 3 * edges * 4 * -(-batch // BATCH_TILE)
    gathers = 3 * edges * batch
    return (max(weight_bytes / BW, gathers / R_GATHER) + edges * 20 / BW) * 1e3


def ideal_rows(res: dict, pruned: list[str], dense: float) -> list[str]:
    """Per pruned circuit: the step with an edge-proportional sum kernel."""
    after = {c["name"]: c["summary"] for c in res["circuits"]}
    lines = ["", "Edge-proportional sum kernel (not built; module docstring), per circuit:", "",
             "| circuit | real sum edges | products + inputs ms | sum node I/O ms | "
             "per-edge ms | step ms | x dense | today ms | x dense |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path in pruned:
        s = after[f"{Path(path).stem} after"]
        prod_in = kernel_ms(s, FLOOR_KERNELS)
        io = sum_io_ms(path, res["batch"])[0]
        e = real_edges(path)
        per_edge = edge_ms(e, res["batch"])
        step = prod_in + io + per_edge
        lines.append(f"| {Path(path).stem} | {e:,} | {prod_in:.2f} | {io:.2f} | {per_edge:.2f} | "
                     f"{step:.2f} | {step / dense:.2f} | {s['time_s'] * 1e3:.2f} | "
                     f"{s['time_s'] * 1e3 / dense:.2f} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="step_model.json: dense 'after', 'fused' first")
    p.add_argument("--dense", required=True, help="the dense circuit's .pcir")
    p.add_argument("--pruned", default="",
                   help="comma-separated pruned .pcir files ('<stem> after' in --model): "
                        "their step with an edge-proportional sum kernel")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    res = json.loads(Path(args.model).read_text())
    after, fused = res["circuits"][0]["summary"], res["circuits"][1]["summary"]
    dense = after["time_s"] * 1e3
    prod_in = kernel_ms(after, FLOOR_KERNELS)
    folded = sum_ms(fused) - sum_ms(after)
    prod_in_fused = kernel_ms(fused, FLOOR_KERNELS) + folded
    io, rows, children, layers = sum_io_ms(args.dense, res["batch"])
    lines = ["# Floor of the pruned training step (bench/step_floor.py)", "",
             f"Dense step modeled {dense:.2f} ms (unfused), {fused['time_s'] * 1e3:.2f} ms "
             f"(fuse_products); sum layers' node I/O: {rows:,} sum rows, {children:,} child rows, "
             f"{layers} sum layers, batch {res['batch']}.", "",
             "| floor part | unfused ms | x dense | fuse_products ms | x dense (unfused) |",
             "|---|---:|---:|---:|---:|",
             f"| products + inputs | {prod_in:.2f} | {prod_in / dense:.2f} | {prod_in_fused:.2f} | "
             f"{prod_in_fused / dense:.2f} |",
             f"| + sum layers' node I/O | {prod_in + io:.2f} | {(prod_in + io) / dense:.2f} | "
             f"{prod_in_fused + io:.2f} | {(prod_in_fused + io) / dense:.2f} |", ""]
    for c in res["circuits"]:
        s = c["summary"]
        lines.append(f"- {c['name']}: {s['time_s'] * 1e3:.2f} ms = {s['time_s'] * 1e3 / dense:.2f}x "
                     f"dense; products + inputs {kernel_ms(s, FLOOR_KERNELS):.2f} ms, sum kernels "
                     f"{sum_ms(s):.2f} ms, {s['launches']} launches")
    pruned = [c for c in args.pruned.split(",") if c]
    if pruned:
        lines += ideal_rows(res, pruned, dense)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_floor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
