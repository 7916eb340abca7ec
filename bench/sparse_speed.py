"""Epoch time of an HCLT pruned by flows, relative to the dense circuit,
for pccompiler (triton) and for PyJuice running the same pruned circuit.

    PYTHONPATH=/tmp/pcc:bench python3 bench/sparse_speed.py --latents 128 --out $OUT

The dense HCLT (`--latents`, 784 MNIST pixels x 256 categories, the shipped
Chow-Liu tree of bench/mnist_common.py) gets `--train-steps` mini-batch EM
steps first (step 0.5, so its flows mean something), then is pruned
(`pccompiler.train.prune_grow.prune`: unstructured, global ranking of the
sum edges by their flows over `--flow-rows` train images, at least one edge
kept per sum node) to each of `--keeps`, and recompiled; the passes
(detect-block-sparsity) decide which groups become block-sparse and which
stay edge lists (`--no-permute` skips its co-clustering search for
permutations that make blocks; compile time is reported). Every circuit, dense included, is timed the same way:
`--warmup` untimed steps, then `--steps` timed steps of forward + backward +
mini-batch EM on batches of `--batch` real train images. The epoch time is
EXTRAPOLATED: mean step time x 60,000 / batch. PyJuice gets the same Model
through bench/pyjuice_bridge.py (zero-weight padding under a zero_param_mask,
MiniBatchEM with keep_zero_params=True) and the same batches.

Block report per circuit: sum groups by (pattern, block size) with their
real edges, stored weights (edges + zero-weight padding) and density =
real / stored; and the layout's sum partitions by (block size, kernel) with
stored parameters. Writes sparse_speed.json / .md into --out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mnist_common import (command_line, hclt_tree, machine_line, mnist_split,  # noqa: E402
                          save_results, sync)

EPOCH_SAMPLES = 60_000
PATTERNS = {0: "unset", 1: "dense", 2: "block_sparse", 3: "sparse"}


def block_report(circuit) -> dict:
    """Sum groups by (pattern, block size) and layout partitions by kernel."""
    from pccompiler import ir
    from pccompiler.ir import pcir
    from pccompiler.passes.structure.graph import edges_of
    model, layout = circuit.model, circuit.layout
    from pccompiler.passes.helpers.row_tiles import row_tiles
    table = ir.tensor_table(model)
    tiles = row_tiles(model, table)
    groups: dict = defaultdict(lambda: {"groups": 0, "real": 0, "stored": 0})
    for g in model.groups:
        if g.kind != pcir.SUM:
            continue
        w = edges_of(model, g, table)[2]
        key = f"{PATTERNS.get(int(g.sum.pattern), g.sum.pattern)}/b{int(g.sum.block_size)}"
        if g.id in tiles:
            key = "row_tiles/{}x{}".format(*tiles[g.id])
        groups[key]["groups"] += 1
        groups[key]["real"] += int(np.count_nonzero(w))
        groups[key]["stored"] += int(np.size(w))
    parts: dict = defaultdict(lambda: {"partitions": 0, "blocks": 0, "stored": 0})
    for layer in layout.layers:
        for sp in layer.sum_partitions:
            key = f"b{int(sp.block_size)}/{sp.kernel or '?'}"
            if "tile_rows" in sp.kernel_options:
                key += f"/t{sp.kernel_options['tile_rows']}"
            parts[key]["partitions"] += 1
            parts[key]["blocks"] += int(sp.num_blocks)
            parts[key]["stored"] += int(sp.num_blocks) * int(sp.max_children) * int(sp.block_size)
    real = sum(v["real"] for v in groups.values())
    stored = sum(v["stored"] for v in groups.values())
    return {"sum_groups": dict(groups), "partitions": dict(parts), "real_edges": real,
            "stored_edges": stored, "density": real / max(stored, 1),
            "sum_params": int(layout.num_sum_params)}


def time_steps(step, batches: list[torch.Tensor], warmup: int, device: str) -> float:
    """Mean seconds of `step(x)` over `batches[warmup:]` (the first `warmup` untimed)."""
    for x in batches[:warmup]:
        step(x)
    sync(device)
    t = time.perf_counter()
    for x in batches[warmup:]:
        step(x)
    sync(device)
    return (time.perf_counter() - t) / max(len(batches) - warmup, 1)


def time_ours(model, batches, args, tiles: bool = True, variant: str = "after",
              same_as: bytes | None = None) -> tuple[dict, object]:
    """variant: bench/step_model.py's code switches ('before': row tiles'
    node flows per pair and their dots in fp32, the code before 2026-12-07),
    held while the circuit compiles, builds its plans and is timed.
    same_as: the default's Layout bytes; a variant whose Layout is the same
    is not timed (`same_layout`: a pass switch that changed nothing here)."""
    import pccompiler as pc
    from sparse_tiles import layout_work
    from step_model import variant as code_variant
    options = {"detect-block-sparsity": {"permute": bool(args.permute), "tiles": tiles}}

    def step(x):
        circuit.em_step(x, step_size=0.1, pseudocount=0.1)
    with code_variant(variant):
        t = time.perf_counter()
        circuit = pc.compile(model, backend=args.backend, device=args.device,
                             pass_options=options)
        compile_s = time.perf_counter() - t
        if same_as is not None and layout_bytes(circuit) == same_as:
            return {"compile_s": compile_s, "same_layout": True}, circuit
        per_step = time_steps(step, batches, args.warmup, args.device)
    return {"compile_s": compile_s, "step_s": per_step, "work": layout_work(circuit.layout)["work"],
            "epoch_s": per_step * EPOCH_SAMPLES / args.batch}, circuit


def layout_bytes(circuit) -> bytes:
    return circuit.layout.SerializeToString(deterministic=True)


def profile_step(model, x: torch.Tensor, args, keep: float) -> None:
    """Print the GPU time per kernel of one eager training step (no CUDA
    graph, so every launch shows) of `model` compiled as time_ours does:
    where a pruned circuit's step goes, by kernel and launch count."""
    import pccompiler as pc
    from step_profile import kernel_table
    options = {"detect-block-sparsity": {"permute": bool(args.permute), "tiles": True}}
    eager = pc.compile(model, backend=args.backend, device=args.device, pass_options=options,
                       cuda_graphs=False)
    print(f"keep {keep}: kernels of one eager step (row tiles on)", flush=True)
    kernel_table(lambda b: eager.em_step(b, step_size=0.1, pseudocount=0.1), x, args.profile)
    del eager


def time_pyjuice(model, batches, args) -> dict:
    import pyjuice as juice
    from pyjuice_bridge import convert
    t = time.perf_counter()
    pc = juice.compile(convert(model).root, verbose=False)
    pc.to(torch.device(args.device))
    compile_s = time.perf_counter() - t
    opt = juice.optim.MiniBatchEM(pc, step_size=0.1, pseudocount=0.1, keep_zero_params=True)
    first = [True]

    def step(x):
        lls = pc(x.long(), record_cudagraph=first[0] and args.device.startswith("cuda"))
        first[0] = False
        lls.mean().backward()
        opt.step()
    per_step = time_steps(step, batches, args.warmup, args.device)
    out = {"compile_s": compile_s, "step_s": per_step, "num_edges": int(pc.num_edges),
           "epoch_s": per_step * EPOCH_SAMPLES / args.batch}
    del pc, opt
    return out


def write_markdown(results: dict, path: Path) -> None:
    a = results["args"]
    rows = results["circuits"]
    dense = rows[0]
    lines = ["# Sparse speed: HCLT pruned by flows, epoch time relative to dense", "",
             f"Machine: {results['machine']}", "", f"Command: `{results['command']}`", "",
             f"HCLT latents {a['latents']} on MNIST (784 x 256), {a['train_steps']} EM steps "
             f"before pruning, flows over {a['flow_rows']} train images. Epoch time is "
             f"extrapolated: mean of {a['steps'] - a['warmup']} timed steps (after "
             f"{a['warmup']} untimed) of forward + backward + mini-batch EM at batch "
             f"{a['batch']}, x {EPOCH_SAMPLES} / {a['batch']}. Block permutation search "
             f"{'on' if a['permute'] else 'off'}. Targets (pccompiler): 0.6 / "
             "0.35 / 0.2 of dense at keep 0.5 / 0.25 / 0.1. pcc = row tiles on (the "
             "default); 'rows' = detect-block-sparsity{tiles=false} (the one-row sparse form "
             "of the last measurement), same run; 'model' = modeled work relative to dense "
             "(bench/sparse_tiles.py layout_work).", "",
             "| keep | real sum edges | stored (with padding) | density | pcc compile s | pcc "
             "epoch s | pcc ratio | model | rows compile s | rows epoch s | rows ratio | "
             "rows model | PyJuice edges | PyJuice epoch s | PyJuice ratio | pcc / PyJuice |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ours, pj = r.get("pcc", {}), r.get("pyjuice", {})
        ratio = (f"{ours['epoch_s'] / dense['pcc']['epoch_s']:.3f}"
                 if "epoch_s" in ours and "epoch_s" in dense.get("pcc", {}) else "-")
        pj_ratio = (f"{pj['epoch_s'] / dense['pyjuice']['epoch_s']:.3f}"
                    if "epoch_s" in pj and "epoch_s" in dense.get("pyjuice", {}) else "-")
        vs = f"{ours['epoch_s'] / pj['epoch_s']:.2f}" if "epoch_s" in ours and "epoch_s" in pj else "-"
        blocks = r.get("blocks", {})
        rows_f = r.get("pcc_rows", {})
        dpcc = dense.get("pcc", {})
        rows_ratio = (f"{rows_f['epoch_s'] / dpcc['epoch_s']:.3f}"
                      if "epoch_s" in rows_f and "epoch_s" in dpcc else "-")
        model = {k: (f"{v['work'] / dpcc['work']:.3f}" if "work" in v and "work" in dpcc else "-")
                 for k, v in (("pcc", ours), ("rows", rows_f))}
        lines.append(
            f"| {r['keep']} | {blocks.get('real_edges', 0):,} | {blocks.get('stored_edges', 0):,} | "
            f"{blocks.get('density', 0):.3f} | {ours.get('compile_s', float('nan')):.1f} | "
            f"{ours.get('epoch_s', float('nan')):.3f} | {ratio} | {model['pcc']} | "
            f"{rows_f.get('compile_s', float('nan')):.1f} | "
            f"{rows_f.get('epoch_s', float('nan')):.3f} | {rows_ratio} | {model['rows']} | "
            f"{pj.get('num_edges', '-')} | {pj.get('epoch_s', float('nan')):.3f} | {pj_ratio} | {vs} |")
    ab = [(r["keep"], name, v) for r in rows for name, v in r.get("pcc_ab", {}).items()]
    if ab and "epoch_s" in dense.get("pcc", {}):
        lines += ["", "Code variants, same run (bench/step_model.py `variant`: 'before' = row "
                  "tiles' node flows per (child block, parent row) pair and their dots in fp32, "
                  "the code before 2026-12-07; 'allruns' = tile flows for every run of small "
                  "blocks; 'tiles16' = only runs of >= 16 rows; 'round2' = main before branch "
                  "sparsefloor; 'unpriced' = main before branch sparseprice: blocks that pass "
                  "the padding tolerance stored block-sparse unpriced); ratio to the dense circuit "
                  "(default code):", "", "| keep | variant | epoch s | ratio | default epoch s |",
                  "|---:|---|---:|---:|---:|"]
        for r in rows:
            for name, v in r.get("pcc_ab", {}).items():
                default = f"{r.get('pcc', {}).get('epoch_s', float('nan')):.3f}"
                if v.get("same_layout"):
                    lines.append(f"| {r['keep']} | {name} | the default's Layout | - | {default} |")
                    continue
                lines.append(f"| {r['keep']} | {name} | {v['epoch_s']:.3f} | "
                             f"{v['epoch_s'] / dense['pcc']['epoch_s']:.3f} | {default} |")
    lines += ["", "Where the edges are (sum groups by pattern/block size: groups, real edges, "
              "stored weights, density; layout partitions by block size/kernel: partitions, "
              "blocks, stored parameters):", ""]
    for r in rows:
        b = r.get("blocks")
        if not b:
            continue
        g = "; ".join(f"{k}: {v['groups']} groups, {v['real']:,} real / {v['stored']:,} stored "
                      f"({v['real'] / max(v['stored'], 1):.2f})"
                      for k, v in sorted(b["sum_groups"].items()))
        p = "; ".join(f"{k}: {v['partitions']} parts, {v['blocks']:,} blocks, {v['stored']:,} params"
                      for k, v in sorted(b["partitions"].items()))
        lines += [f"- keep {r['keep']}: groups {g}", f"  - partitions {p}"]
    errors = [f"- keep {r['keep']} {k}: {r[k]}" for r in rows for k in r if k.endswith("error")]
    if errors:
        lines += ["", "Errors:", ""] + errors
    lines.append("")
    path.write_text("\n".join(lines))


class _SkipOurs(Exception):
    """--pyjuice-only: leave pccompiler's timing out for this keep."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latents", type=int, default=128)
    p.add_argument("--keeps", default="1,0.5,0.25,0.1")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=23, help="steps per circuit, warm-up included")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=60)
    p.add_argument("--flow-rows", type=int, default=20_000)
    p.add_argument("--no-pyjuice", action="store_true")
    p.add_argument("--pyjuice-only", action="store_true",
                   help="time PyJuice alone on the pruned circuits (a second call after a "
                        "--no-pyjuice one: pcc's keeps first, so a timeout keeps them)")
    p.add_argument("--ab", default="",
                   help="also time each pruned circuit under these bench/step_model.py code "
                        "variants (before, allruns, tiles16, round2, unpriced, runs256), same run")
    p.add_argument("--rows", action="store_true",
                   help="also time each pruned circuit with row tiles off (the one-row form)")
    p.add_argument("--no-permute", dest="permute", action="store_false",
                   help="skip detect-block-sparsity's node-permutation search (co-clustering)")
    p.add_argument("--profile", type=int, default=0, metavar="ROWS",
                   help="on cuda: also print the top ROWS kernels of one eager step per keep")
    p.add_argument("--backend", default="triton")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--limit", type=int, default=None, help="rows per split (smoke tests)")
    p.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    import pccompiler as pc
    from pccompiler.train.prune_grow import prune
    args = parse_args(argv)
    keeps = [float(k) for k in args.keeps.split(",")]
    if keeps[0] != 1.0:
        keeps = [1.0] + keeps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = mnist_split(args.limit)["train"]
    x = torch.from_numpy(np.ascontiguousarray(train)).to(args.device)
    gen = torch.Generator().manual_seed(0)
    batches = [x[torch.randint(0, len(x), (args.batch,), generator=gen).to(x.device)]
               for _ in range(args.steps)]
    results = {"machine": machine_line(), "command": command_line(), "args": vars(args),
               "circuits": [], "notes": []}
    print(results["machine"], flush=True)
    model = pc.lower(pc.hclt(None, args.latents, num_cats=256,
                             tree=hclt_tree(train, results["notes"]), seed=0))
    dense = pc.compile(model, backend=args.backend, device=args.device)
    for i in range(args.train_steps):
        dense.em_step(x[torch.randint(0, len(x), (args.batch,), generator=gen).to(x.device)],
                      step_size=0.5, pseudocount=0.1)
    flow_rows = x[:args.flow_rows]
    failed = False
    for keep in keeps:
        row: dict = {"keep": keep}
        results["circuits"].append(row)
        try:
            t = time.perf_counter()
            pruned = dense.to_model() if keep == 1.0 else prune(dense, flow_rows, keep)
            row["prune_s"] = time.perf_counter() - t
            if args.pyjuice_only:
                raise _SkipOurs
            row["pcc"], circuit = time_ours(pruned, batches, args)
            row["blocks"] = block_report(circuit)
            default_layout = layout_bytes(circuit)
            del circuit
            if args.profile and args.device.startswith("cuda"):
                profile_step(pruned, batches[0], args, keep)
            for name in (args.ab.split(",") if args.ab and keep != 1.0 else []):
                ab, circuit = time_ours(pruned, batches, args, variant=name,
                                        same_as=default_layout)
                row.setdefault("pcc_ab", {})[name] = ab
                del circuit
                print(f"keep {keep}: variant {name} " + ("has the default's Layout, not timed"
                      if ab.get("same_layout") else f"epoch {ab['epoch_s']:.3f}s"), flush=True)
            if args.rows and keep != 1.0:
                row["pcc_rows"], circuit = time_ours(pruned, batches, args, tiles=False)
                del circuit
                print(f"keep {keep}: rows form epoch {row['pcc_rows']['epoch_s']:.3f}s "
                      f"(compile {row['pcc_rows']['compile_s']:.1f}s)", flush=True)
            print(f"keep {keep}: {row['blocks']['real_edges']:,} real edges, density "
                  f"{row['blocks']['density']:.3f}, pcc epoch {row['pcc']['epoch_s']:.3f}s "
                  f"(compile {row['pcc']['compile_s']:.1f}s)", flush=True)
        except _SkipOurs:
            pass
        except Exception as exc:
            failed = True
            traceback.print_exc()
            row["pcc_error"] = f"{type(exc).__name__}: {exc}"
            pruned = None
        if not args.no_pyjuice and pruned is not None:
            try:
                row["pyjuice"] = time_pyjuice(pruned, batches, args)
                print(f"keep {keep}: PyJuice {row['pyjuice']['num_edges']:,} edges, epoch "
                      f"{row['pyjuice']['epoch_s']:.3f}s", flush=True)
            except Exception as exc:
                failed = True
                traceback.print_exc()
                row["pyjuice_error"] = f"{type(exc).__name__}: {exc}"
        save_results(results, out, "sparse_speed", write_markdown, args.device)
    print(f"wrote {out / 'sparse_speed.json'} and {out / 'sparse_speed.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
