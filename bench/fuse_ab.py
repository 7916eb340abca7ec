"""fuse_products A/B on the GPU: training step and forward, fused against
unfused, on race cases and (optionally) a pruned HCLT.

    PYTHONPATH=/tmp/pcc:bench python3 bench/fuse_ab.py --cases hclt128,pd32 --out $OUT
    (--pruned-keep 0.1 adds the HCLT pruned by flows, which needs MNIST: PCC_DATA_DIR)

Why: the triton option `fuse_products` (backends/triton/fusion.py) folds
product layers into the sum kernels' loads, so product values (and, where
no row tile writes them, product flows) are never written and read back;
bench/step_model.py models the saving, this measures it. Per case, both
plans are compiled from one Model; first the agreement on the GPU: the
log-likelihoods of one batch and the parameters after one EM step on the
same batch (max abs differences), then `--rounds` alternating rounds
(unfused, fused, unfused, ...) of `--warmup` untimed and `--steps` timed
steps of (a) mini-batch EM (forward + backward + update, CUDA graphs as
by default) and (b) log_prob, on random batches of `--batch` (the race's
data, bench/race.py; real MNIST for the pruned case); the median per step
is reported. `--profile N` prints the top N kernels of one eager training
step per plan (torch.profiler). Writes fuse_ab.json / fuse_ab.md into --out
after every case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mnist_common import command_line, machine_line, save_results, sync  # noqa: E402

STEP_SIZE, PSEUDOCOUNT = 0.1, 0.1
PRUNE_OPTIONS = {"detect-block-sparsity": {"permute": False, "tiles": True}}


def per_step_s(fn, batches: torch.Tensor, warmup: int) -> float:
    for x in batches[:warmup]:
        fn(x)
    sync(str(batches.device))
    t = time.perf_counter()
    for x in batches[warmup:]:
        fn(x)
    sync(str(batches.device))
    return (time.perf_counter() - t) / max(batches.shape[0] - warmup, 1)


def agreement(circuits: dict, x: torch.Tensor) -> dict:
    """Max |difference| fused - unfused of log p(x) and of every parameter
    array after one EM step on x (both start from the same Model)."""
    lls = {k: c.log_prob(x).double().cpu() for k, c in circuits.items()}
    for c in circuits.values():
        c.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)
    params = {k: c.parameter_arrays() for k, c in circuits.items()}
    diff = max(float(np.max(np.abs(np.asarray(params[True][n], dtype=np.float64)
                                   - np.asarray(params[False][n], dtype=np.float64))))
               for n in params[False])
    return {"ll_max_abs": float((lls[True] - lls[False]).abs().max()),
            "ll_mean": float(lls[False].mean()), "param_max_abs": diff}


def run_case(name: str, model, batches: torch.Tensor, args, options: dict | None) -> dict:
    import pccompiler as pc
    res: dict = {"name": name}
    circuits = {}
    for fused in (False, True):
        t = time.perf_counter()
        circuits[fused] = pc.compile(model, backend="triton", device=args.device,
                                     pass_options=options, fuse_products=fused)
        res[f"compile_s_{int(fused)}"] = time.perf_counter() - t
    plan = circuits[True].engine.fast_plan
    res["folded_products"] = sum(p.fused for lp in plan.layers for p in lp.products)
    res["folded_backward"] = sum(p.fused_bwd for lp in plan.layers for p in lp.products)
    res["product_parts"] = sum(len(lp.products) for lp in plan.layers)
    res["agreement"] = agreement(circuits, batches[0])
    print(f"{name}: {res['folded_products']} of {res['product_parts']} product parts fused "
          f"({res['folded_backward']} backward too); agreement {res['agreement']}", flush=True)
    runs: dict = {f"{k}_{int(f)}": [] for k in ("train", "forward") for f in (False, True)}
    for r in range(args.rounds):
        for fused in (False, True):
            c = circuits[fused]
            runs[f"train_{int(fused)}"].append(per_step_s(
                lambda x: c.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT),
                batches, args.warmup))
            with torch.no_grad():
                runs[f"forward_{int(fused)}"].append(per_step_s(c.log_prob, batches, args.warmup))
        print(f"{name} round {r}: " + ", ".join(f"{k} {v[-1] * 1e3:.3f} ms"
                                                 for k, v in runs.items()), flush=True)
    res["runs_s"] = runs
    res.update({k: statistics.median(v) for k, v in runs.items()})
    circuits.clear()
    if args.profile:
        from step_profile import kernel_table
        for fused in (False, True):
            eager = pc.compile(model, backend="triton", device=args.device,
                               pass_options=options, fuse_products=fused, cuda_graphs=False)
            print(f"{name}: kernels of one eager training step, fuse_products={fused}",
                  flush=True)
            kernel_table(lambda b: eager.em_step(b, step_size=STEP_SIZE,
                                                 pseudocount=PSEUDOCOUNT), batches[0],
                         args.profile)
            del eager
    return res


def pruned_hclt(args):
    """HCLT (`--pruned-latents`, MNIST, shipped tree) after
    `--pruned-train-steps` EM steps, pruned by flows over `--flow-rows`
    train images to `--pruned-keep` (bench/sparse_speed.py's recipe,
    fewer steps); and real MNIST batches."""
    import pccompiler as pc
    from mnist_common import hclt_tree, mnist_split
    from pccompiler.train.prune_grow import prune
    train = mnist_split(None)["train"]
    x = torch.from_numpy(np.ascontiguousarray(train)).to(args.device)
    gen = torch.Generator().manual_seed(0)
    def pick() -> torch.Tensor:
        return x[torch.randint(0, len(x), (args.batch,), generator=gen).to(x.device)]
    model = pc.lower(pc.hclt(None, args.pruned_latents, num_cats=256,
                             tree=hclt_tree(train, []), seed=0))
    dense = pc.compile(model, backend="triton", device=args.device)
    for _ in range(args.pruned_train_steps):
        dense.em_step(pick(), step_size=0.5, pseudocount=0.1)
    pruned = prune(dense, x[:args.flow_rows], args.pruned_keep)
    del dense
    batches = torch.stack([pick() for _ in range(args.warmup + args.steps)])
    return pruned, batches


NOTE = ("Batch {batch}; per step, median of {rounds} alternating rounds of {steps} steps "
        "(after {warmup} untimed); train = em_step (forward + backward + EM, CUDA graphs), "
        "forward = log_prob. Agreement: max |fused - unfused| of log p(x) of one batch and of "
        "the parameters after one EM step.")
COLUMNS = ("case", "fused parts (bwd) / products", "train ms unfused", "train ms fused", "x",
           "forward ms unfused", "forward ms fused", "x", "ll diff", "param diff")


def write_markdown(results: dict, path: Path) -> None:
    head = {"Machine": results["machine"], "Command": f"`{results['command']}`"}
    lines = ["# fuse_products A/B (triton): fused against unfused plan", ""]
    for key, text in head.items():
        lines += [f"{key}: {text}", ""]
    lines += [NOTE.format(**results["args"]), "", "| " + " | ".join(COLUMNS) + " |",
              "|---|---|" + "---:|" * (len(COLUMNS) - 2)]
    for r in results["cases"]:
        if "train_0" not in r:
            lines.append(f"| {r['name']} | error: {r.get('error', 'not finished')} |"
                         + " |" * 8)
            continue
        a = r["agreement"]
        lines.append(
            f"| {r['name']} | {r['folded_products']} ({r['folded_backward']}) / "
            f"{r['product_parts']} | {r['train_0'] * 1e3:.3f} | {r['train_1'] * 1e3:.3f} | "
            f"{r['train_0'] / r['train_1']:.2f} | {r['forward_0'] * 1e3:.3f} | "
            f"{r['forward_1'] * 1e3:.3f} | {r['forward_0'] / r['forward_1']:.2f} | "
            f"{a['ll_max_abs']:.2e} | {a['param_max_abs']:.2e} |")
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="hclt128,pd32", help="bench/race_cases.py names")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", type=int, default=0, metavar="ROWS")
    p.add_argument("--pruned-keep", type=float, default=0.0, help="0: no pruned case")
    p.add_argument("--pruned-latents", type=int, default=128)
    p.add_argument("--pruned-train-steps", type=int, default=10)
    p.add_argument("--flow-rows", type=int, default=5000)
    p.add_argument("--fuse-tile-children", action="store_true",
                   help="also fold products that row tiles read (fusion.FUSE_TILE_CHILDREN; "
                        "pruned circuits: off by default, the model puts it above its saving)")
    p.add_argument("--device", default="cuda",
                   help="cpu only for a dry run under TRITON_INTERPRET=1 (tiny cases)")
    p.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    import race_cases
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("fuse_ab.py times CUDA kernels: no GPU here")
    if args.fuse_tile_children:
        from pccompiler.backends.triton import fusion
        fusion.FUSE_TILE_CHILDREN = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_line(), "command": command_line(), "args": vars(args),
               "cases": []}
    print(results["machine"], flush=True)
    failed = False
    jobs = [(c.name, c) for c in race_cases.select_cases(args.cases)]
    if args.pruned_keep:
        jobs.append((f"hclt{args.pruned_latents}_keep{args.pruned_keep}", None))
    for name, case in jobs:
        row: dict = {"name": name}
        results["cases"].append(row)
        try:
            if case is None:
                model, batches = pruned_hclt(args)
                options = PRUNE_OPTIONS
            else:
                model = case.build()
                nv = len(model.variables)
                gen = torch.Generator(device=args.device).manual_seed(race_cases.SEED)
                dtype = torch.uint8 if case.num_cats <= 256 else torch.int64
                batches = torch.randint(0, case.num_cats, (args.warmup + args.steps, args.batch,
                                                           nv), generator=gen,
                                        device=args.device, dtype=dtype)
                options = None
            row.update(run_case(name, model, batches, args, options))
        except Exception as exc:
            failed = True
            traceback.print_exc()
            row["error"] = f"{type(exc).__name__}: {exc}"
        save_results(results, out, "fuse_ab", write_markdown, args.device)
    print((out / "fuse_ab.md").read_text(), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
