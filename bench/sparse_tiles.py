"""Row tiles for pruned sum groups (issue #18 point 4), measured on the CPU.

    PYTHONPATH=/tmp/pcc:bench python3 bench/sparse_tiles.py --latents 32,128 --out OUT

For each HCLT (`--latents`, MNIST 784 x 256, the shipped Chow-Liu tree)
trained `--train-steps` mini-batch EM steps on the torch backend and pruned
by flows over `--flow-rows` train images to each of `--keeps`:

* recompile time of the pruned Model with row tiles off (the one-row
  `sparse` form, co-clustering off as in bench/sparse_speed.py) and on
  (chosen by the cost model, as for the triton backend), in the same run;
* the modeled work of every compiled circuit relative to the dense one
  (`layout_work`: the cost model of passes/helpers/row_tiles.py applied to
  the Layout's partitions: forward and parameter-flow tiles read their
  children once per run of blocks with equal children (the triton plan's
  shared_run) and multiply them by max(rows, 16); the node flows read a
  parent row per (child block, parent block row) pair);
* stored sum weights (real + zero-weight pseudo-edges);
* with `--epoch-latents L` (one small HCLT), the torch backend's step time
  (forward + backward + mini-batch EM at `--batch`) pruned / dense, tiles
  off and on, on the CPU, same data, same run.

Writes sparse_tiles.json / sparse_tiles.md into --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mnist_common import command_line, hclt_tree, machine_line, mnist_split  # noqa: E402


def layout_work(layout, macs_per_read: float = 64.0) -> dict:
    """Modeled work of a Layout's sum layers (see the module docstring), in
    child-value reads per batch column, and its parts."""
    from pccompiler import ir
    from pccompiler.backends.triton.plan import parent_union, shared_run
    table = ir.tensor_table(layout)
    dot = lambda m: 1.0 + max(m, 16) / macs_per_read  # noqa: E731
    fwd = bwd = 0.0
    tile_reads = gathered = 0
    for layer in layout.layers:
        for sp in layer.sum_partitions:
            nb, k, bs = int(sp.num_blocks), int(sp.max_children), int(sp.block_size)
            cs = np.asarray(table[sp.child_slots]).reshape(nb, k)
            nc = np.asarray(table[sp.block_num_children], dtype=np.int64).reshape(nb)
            g = shared_run(cs, nc, bs)
            reads = nc.reshape(nb // g, g)[:, 0]                 # children per run
            fwd += 2.0 * float((reads * dot(g * bs)).sum())
            if g * bs >= 16:
                tile_reads += int(reads.sum())
            else:
                gathered += int(reads.sum())
        for bp in layer.sum_backward_partitions:
            nb, mp = int(bp.num_blocks), int(bp.max_parents)
            n = np.asarray(table[bp.cblock_num_parents], dtype=np.int64).reshape(nb)
            pbs, cbs = int(bp.parent_block_size), int(bp.child_block_size)
            g, _, _, counts = parent_union(
                np.asarray(table[bp.parent_slots], dtype=np.int64).reshape(nb, mp),
                np.asarray(table[bp.parent_param_starts], dtype=np.int64).reshape(nb, mp), n, cbs)
            bwd += float(counts[::g].sum()) * pbs * dot(g * cbs)
    return {"work": fwd + bwd, "forward_and_param_flows": fwd, "node_flows": bwd,
            "tile_child_reads": tile_reads, "gathered_child_reads": gathered}


def stored_weights(model) -> tuple[int, int]:
    """(real sum edges (non-zero weights), stored sum weights)."""
    from pccompiler import ir
    from pccompiler.ir import pcir
    table = ir.tensor_table(model)
    real = stored = 0
    for g in model.groups:
        if g.kind == pcir.SUM and g.sum.weights:
            w = np.asarray(table[g.sum.weights])
            real += int(np.count_nonzero(w))
            stored += int(w.size)
    return real, stored


def compile_timed(model, tiles: bool, backend: str = "torch"):
    """Compiled for the torch backend (the CPU engine) with row tiles off or on."""
    import pccompiler as pc
    opts = {"detect-block-sparsity": {"permute": False, "tiles": tiles}}
    t = time.perf_counter()
    circuit = pc.compile(model, backend=backend, device="cpu", pass_options=opts)
    return circuit, time.perf_counter() - t


def step_time(circuit, batches, warmup: int) -> float:
    for x in batches[:warmup]:
        circuit.em_step(x, step_size=0.1, pseudocount=0.1)
    t = time.perf_counter()
    for x in batches[warmup:]:
        circuit.em_step(x, step_size=0.1, pseudocount=0.1)
    return (time.perf_counter() - t) / max(len(batches) - warmup, 1)


def run_latents(latents, train, args, notes, epoch: bool) -> list[dict]:
    import pccompiler as pc
    from pccompiler.train.prune_grow import prune
    x = torch.from_numpy(np.ascontiguousarray(train))
    gen = torch.Generator().manual_seed(0)
    model = pc.lower(pc.hclt(None, latents, num_cats=256, tree=hclt_tree(train, notes), seed=0))
    dense, dense_s = compile_timed(model, True)
    for _ in range(args.train_steps):
        dense.em_step(x[torch.randint(0, len(x), (args.batch,), generator=gen)], step_size=0.5,
                      pseudocount=0.1)
    base = layout_work(dense.layout)
    batches = [x[torch.randint(0, len(x), (args.batch,), generator=gen)]
               for _ in range(args.steps)] if epoch else []
    dense_step = step_time(dense, batches, args.warmup) if epoch else None
    rows = [{"latents": latents, "keep": 1.0, "compile_s": {"tiles": dense_s},
             "edges": stored_weights(dense.to_model()), "work": {"tiles": base},
             "step_s": {"tiles": dense_step} if epoch else {}}]
    print(f"L{latents} dense: compile {dense_s:.2f}s, work {base['work']:.3g}"
          + (f", step {dense_step:.3f}s" if epoch else ""), flush=True)
    for keep in args.keeps:
        pruned = prune(dense, train[:args.flow_rows], keep)
        row = {"latents": latents, "keep": keep, "compile_s": {}, "work": {}, "step_s": {},
               "stored": {}}
        row["edges"] = stored_weights(pruned)
        for name, tiles in (("rows", False), ("tiles", True)):
            circuit, secs = compile_timed(pruned, tiles)
            row["compile_s"][name] = secs
            row["work"][name] = layout_work(circuit.layout)
            row["stored"][name] = stored_weights(circuit.to_model())[1]
            if epoch:
                row["step_s"][name] = step_time(circuit, batches, args.warmup)
            print(f"L{latents} keep {keep} {name}: compile {secs:.2f}s, work "
                  f"{row['work'][name]['work'] / base['work']:.3f} of dense, stored "
                  f"{row['stored'][name]:,}" + (f", step {row['step_s'][name]:.3f}s "
                                                f"({row['step_s'][name] / dense_step:.2f} "
                                                "of dense)" if epoch else ""), flush=True)
            del circuit
        rows.append(row)
    return rows


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# Row tiles for pruned HCLTs on the CPU (issue #18 point 4)", "",
             f"Machine: {results['machine']}", "", f"Command: `{results['command']}`", "",
             "rows = the one-row sparse form (tiles off), tiles = row tiles chosen by the "
             "cost model; co-clustering off in both. Work = modeled sum-layer work "
             "(bench/sparse_tiles.py layout_work: the cost model of passes/helpers/row_tiles.py "
             "one_row_cost / grid_cost) relative to the dense circuit of the same latents.", "",
             "| latents | keep | real edges | stored rows | stored tiles | compile rows s | "
             "compile tiles s | work rows | work tiles | tile reads / gathered (tiles) | "
             "torch step rows | torch step tiles |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lat in results["latents"]:
        rows = [r for r in results["rows"] if r["latents"] == lat]
        if not rows:
            continue
        dense = rows[0]
        dw = dense["work"]["tiles"]["work"]
        ds = dense["step_s"].get("tiles")
        for r in rows:
            w = {k: f"{v['work'] / dw:.3f}" for k, v in r["work"].items()}
            s = {k: (f"{v / ds:.2f}" if ds and v else "-") for k, v in r["step_s"].items()}
            t = r["work"].get("tiles", {})
            lines.append(
                f"| {lat} | {r['keep']} | {r['edges'][0]:,} | "
                f"{r.get('stored', {}).get('rows', r['edges'][1]):,} | "
                f"{r.get('stored', {}).get('tiles', r['edges'][1]):,} | "
                f"{r['compile_s'].get('rows', float('nan')):.2f} | "
                f"{r['compile_s'].get('tiles', float('nan')):.2f} | {w.get('rows', '-')} | "
                f"{w.get('tiles', '-')} | {t.get('tile_child_reads', 0):,} / "
                f"{t.get('gathered_child_reads', 0):,} | {s.get('rows', '-')} | "
                f"{s.get('tiles', '-')} |")
    lines += ["", "Torch step columns: mean step time (forward + backward + mini-batch EM, "
              f"batch {results['args']['batch']}) relative to the dense circuit's, CPU, "
              "same batches; '-' where not timed.", ""]
    path.write_text("\n".join(lines))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latents", default="32,128")
    p.add_argument("--epoch-latents", type=int, default=16,
                   help="the one HCLT whose torch step time is measured (0: none)")
    p.add_argument("--keeps", default="0.5,0.25,0.1")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=6, help="timed steps + warmup")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--flow-rows", type=int, default=2000)
    p.add_argument("--limit", type=int, default=None, help="rows per split")
    p.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    args = p.parse_args(argv)
    args.keeps = [float(k) for k in args.keeps.split(",")]
    return args


def main(argv=None) -> int:
    import json
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = mnist_split(args.limit)["train"]
    lats = [int(v) for v in args.latents.split(",") if v]
    if args.epoch_latents and args.epoch_latents not in lats:
        lats = [args.epoch_latents] + lats
    results = {"machine": machine_line(), "command": command_line(), "args": vars(args),
               "latents": lats, "rows": [], "notes": []}
    print(results["machine"], flush=True)
    for lat in lats:
        results["rows"] += run_latents(lat, train, args, results["notes"],
                                       epoch=lat == args.epoch_latents)
        (out / "sparse_tiles.json").write_text(json.dumps(results, indent=1, default=str))
        write_markdown(results, out / "sparse_tiles.md")
    print(f"wrote {out / 'sparse_tiles.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
