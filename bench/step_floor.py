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

Writes step_floor.md into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from step_model import BW, LAUNCH_S, compile_triton

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="step_model.json: dense 'after', 'fused' first")
    p.add_argument("--dense", required=True, help="the dense circuit's .pcir")
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_floor.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
