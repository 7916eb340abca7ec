"""Parameter-flow strategies A/B on the GPU: training step per `pflow` option.

    PYTHONPATH=/tmp/pcc:bench python3 bench/pflow_ab.py --cases hclt128,hclt512 --profile 10 --out $OUT

Why: the triton option `pflow` (backends/triton/pflow_launch.py) runs the
parameter flows by their own kernel ("layer", the default), by the same
kernel under whole-block row tiles and a batch split that fills the GPU
("split"), inside the node-flow kernel ("fused", bwd_pflow.py), or fused
where a child block has few parent tiles and split elsewhere
("fused_split"); bench/pflow_cost.py counts their programs, exps and
bytes, this measures them. Variants: a mode, optionally with tile options
for every node-flow part ("fused_i128": pflow="fused" with TILE_I=128). Per case, every variant
is compiled from one Model (race cases, random batches of --batch); first
`--em-steps` EM steps on the same batches, then the log-likelihoods of one
held-out batch and the parameters are compared with the first variant's
(max relative difference of log p(x); max absolute parameter difference);
then --rounds alternating rounds of --warmup untimed and --steps timed
mini-batch EM steps (CUDA graphs, as by default); the median per step is
reported with its share of the H100 tf32 ceiling (race_cases.work_of:
3 x 2 x edges x batch). --profile N: the top N kernels of one eager step per
variant (torch.profiler, bench/step_profile.kernel_table). Writes
pflow_ab.json / pflow_ab.md into --out after every case.
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

from fuse_ab import per_step_s  # noqa: E402
from mnist_common import command_line, machine_line, save_results  # noqa: E402

STEP_SIZE, PSEUDOCOUNT = 0.1, 0.1
TF32_FLOPS = 356e12          # bench/race_report.py CEILINGS
LL_RTOL = 2e-3               # tests/conformance PRECISION_RTOL["tf32"]
VARIANTS = {"layer": ("layer", {}), "split": ("split", {}), "fused": ("fused", {}),
            "fused_split": ("fused_split", {}),
            "fused_i128": ("fused", {"bwdpflow.TILE_I": "128"}),
            "fused_j128": ("fused", {"bwdpflow.TILE_J": "128"})}


def compile_variant(model, name: str, device: str):
    import pccompiler as pc
    mode, bwd_options = VARIANTS[name]
    c = pc.compile(model, backend="triton", device=device, pflow=mode,
                   cuda_graphs=device.startswith("cuda"))
    for lp in c.engine.fast_plan.layers:
        for part in lp.sum_backwards:
            part.options = {**part.options, **bwd_options}
    return c


def agreement(circuits: dict, batches: torch.Tensor, em_steps: int) -> dict:
    """After `em_steps` EM steps on the same batches: per variant, the max
    relative difference of log p(held-out batch) and the max absolute
    parameter difference against the first variant."""
    lls, params = {}, {}
    for name, c in circuits.items():
        for x in batches[:em_steps]:
            c.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)
        lls[name] = c.log_prob(batches[-1]).double().cpu()
        params[name] = c.parameter_arrays()
    base = next(iter(circuits))
    out = {}
    for name in circuits:
        ll_rel = float(((lls[name] - lls[base]).abs() / lls[base].abs()).max())
        pdiff = max(float(np.max(np.abs(np.asarray(params[name][k], dtype=np.float64)
                                        - np.asarray(params[base][k], dtype=np.float64))))
                    for k in params[base])
        out[name] = {"ll_mean": float(lls[name].mean()), "ll_max_rel": ll_rel,
                     "param_max_abs": pdiff, "agrees": ll_rel <= LL_RTOL}
    return out


def run_case(case, args) -> dict:
    import race_cases
    model = case.build()
    flops = race_cases.work_of(model).train(args.batch)[0]
    nv = len(model.variables)
    gen = torch.Generator(device=args.device).manual_seed(race_cases.SEED)
    dtype = torch.uint8 if case.num_cats <= 256 else torch.int64
    batches = torch.randint(0, case.num_cats, (args.warmup + args.steps, args.batch, nv),
                            generator=gen, device=args.device, dtype=dtype)
    res: dict = {"name": case.name, "train_flops": flops}
    circuits = {}
    for name in args.variants:
        t = time.perf_counter()
        circuits[name] = compile_variant(model, name, args.device)
        res[f"compile_s_{name}"] = time.perf_counter() - t
    res["fused_layers"] = {name: sum(c.engine.fused_layers(c.engine.fast_plan))
                           for name, c in circuits.items()}
    res["agreement"] = agreement(circuits, batches, args.em_steps)
    print(f"{case.name}: sum layers fused {res['fused_layers']}", flush=True)
    print(f"{case.name}: agreement {res['agreement']}", flush=True)
    runs: dict = {name: [] for name in circuits}
    for r in range(args.rounds):
        for name, c in circuits.items():
            runs[name].append(per_step_s(
                lambda x: c.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT),
                batches, args.warmup))
        print(f"{case.name} round {r}: " + ", ".join(f"{k} {v[-1] * 1e3:.3f} ms"
                                                    for k, v in runs.items()), flush=True)
    res["runs_s"] = runs
    res["train_s"] = {k: statistics.median(v) for k, v in runs.items()}
    if args.profile and args.device.startswith("cuda"):
        from step_profile import kernel_table
        for name, c in circuits.items():
            c.engine.graphs.enabled = False         # eager launches, one by one
            print(f"{case.name}: kernels of one eager training step, variant {name}",
                  flush=True)
            kernel_table(lambda b: c.em_step(b, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT),
                         batches[0], args.profile)
    circuits.clear()
    return res


NOTE = ("Batch {batch}; per step, median of {rounds} alternating rounds of {steps} steps "
        "(after {warmup} untimed) of em_step (forward + backward + EM, CUDA graphs); % tf32 = "
        "3 x 2 x edges x batch / step time / 356 TFLOP/s. Agreement after {em_steps} EM steps "
        "on the same batches: max relative difference of log p(x) of a held-out batch against "
        "the first variant (tolerance 2e-3, the conformance suite's tf32 rtol) and max absolute "
        "parameter difference.")


def write_markdown(results: dict, path: Path) -> None:
    args = results["args"]
    lines = ["# pflow A/B (triton): parameter-flow strategies, training step", "",
             f"Machine: {results['machine']}", "", f"Command: `{results['command']}`", "",
             NOTE.format(**args), "",
             "| case | variant | fused layers | step ms | x first | % tf32 | mean LL | "
             "LL max rel diff | param max abs diff | agrees |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["cases"]:
        if "train_s" not in r:
            lines.append(f"| {r['name']} | error: {r.get('error', 'not finished')} |"
                         + " |" * 8)
            continue
        first = next(iter(r["train_s"].values()))
        for name, secs in r["train_s"].items():
            a = r["agreement"][name]
            lines.append(
                f"| {r['name']} | {name} | {r['fused_layers'][name]} | {secs * 1e3:.3f} | "
                f"{first / secs:.2f} | "
                f"{100 * r['train_flops'] / secs / TF32_FLOPS:.1f} | {a['ll_mean']:.4f} | "
                f"{a['ll_max_rel']:.1e} | {a['param_max_abs']:.1e} | "
                f"{'yes' if a['agrees'] else 'NO'} |")
    path.write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="hclt128,hclt512",
                   help="bench/race_cases.py names; 'quick' = its quick_case (HMM, dry runs)")
    p.add_argument("--variants", default="layer,split,fused,fused_split",
                   help=f"comma list of {sorted(VARIANTS)}; the first is the baseline")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--em-steps", type=int, default=3)
    p.add_argument("--profile", type=int, default=0, metavar="ROWS")
    p.add_argument("--device", default="cuda",
                   help="cpu only for a dry run under TRITON_INTERPRET=1 (tiny cases)")
    p.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    args = p.parse_args(argv)
    args.variants = args.variants.split(",")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    return args


def main(argv=None) -> int:
    import race_cases
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("pflow_ab.py times CUDA kernels: no GPU here")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_line(), "command": command_line(),
               "args": {k: v for k, v in vars(args).items()}, "cases": []}
    print(results["machine"], flush=True)
    failed = False
    names = args.cases.split(",")
    cases = ([race_cases.quick_case()] if "quick" in names else []) + \
        race_cases.select_cases(",".join(n for n in names if n != "quick"))
    for case in cases:
        row: dict = {"name": case.name}
        results["cases"].append(row)
        try:
            row.update(run_case(case, args))
            failed |= not all(a["agrees"] for a in row["agreement"].values())
        except Exception as exc:
            failed = True
            traceback.print_exc()
            row["error"] = f"{type(exc).__name__}: {exc}"
        save_results(results, out, "pflow_ab", write_markdown, args.device)
    print((out / "pflow_ab.md").read_text(), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
