"""Small-batch marginal queries: per-call latency at batch 1 and 8.

On the race's hclt128 (784 vars x 256 cats, 9.3M edges), log p(x) with about
30% of the variables missing (marginalised), each call on a new batch
already on the GPU, timed on the host from the call to the result being
ready (torch.cuda.synchronize), over --calls calls after --warmup:

  pcc graphed     q = circuit.graphed_query(B, dtype=uint8); q(x, missing):
                  two buffer copies + one CUDA-graph replay + the read of
                  the bad-category flag (the sync)
  pcc prefilled   the same graph, inputs written into q.x / q.missing
                  beforehand, check=False: the replay alone
  pcc log_prob    circuit.log_prob(x, missing): the public eager-API path
                  (its own graph cache claims the first batch size it sees)
  pyjuice         pc(x, missing_mask=missing) under no_grad, its CUDA graph
                  recorded on the first call (inner layers; inputs eager)

Also: the GPU time of one replay (CUDA events over --calls back-to-back
replays), and the largest log-likelihood difference against PyJuice fp32.

    PYTHONPATH=.:bench python bench/latency.py --calls 2000
Writes latency-<gpu>-<date>.md / .json to --out-dir and $OUT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

MISSING_FRACTION = 0.3


def latencies_us(call, inputs: list, warmup: int) -> list[float]:
    """Host wall time per call (to a synchronised result), microseconds."""
    for i in range(warmup):
        call(*inputs[i % len(inputs)])
    torch.cuda.synchronize()
    out = []
    for args in inputs:
        t0 = time.perf_counter_ns()
        call(*args)
        torch.cuda.synchronize()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def summary(us: list[float]) -> dict:
    a = np.asarray(us)
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "mean_us": float(a.mean()), "min_us": float(a.min()), "calls": int(a.size)}


def replay_gpu_us(q, calls: int) -> float:
    """GPU time of one replay, from back-to-back replays (no host sync between)."""
    graph = q._graph
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(calls):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / calls


def make_inputs(num_vars: int, batch: int, calls: int, seed: int):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randint(0, 256, (calls, batch, num_vars), generator=gen, device="cuda",
                      dtype=torch.uint8)
    miss = torch.rand((calls, batch, num_vars), generator=gen, device="cuda") < MISSING_FRACTION
    return [(x[i], miss[i]) for i in range(calls)]


def run_pcc(model, batch: int, inputs, args, res: dict) -> torch.Tensor:
    import pccompiler
    circuit = pccompiler.compile(model, backend="triton", device="cuda", check=False,
                                 precision=args.precision)
    q = circuit.graphed_query(batch, dtype=torch.uint8)
    res["pcc_graphed"] = summary(latencies_us(q, inputs, args.warmup))
    res["pcc_graphed"]["replay_gpu_us"] = replay_gpu_us(q, len(inputs))
    res["forward_layers"] = len(q.plan.layers)
    quiet = circuit.graphed_query(batch, dtype=torch.uint8, check=False)
    quiet(*inputs[0])

    def prefilled(x, miss):
        quiet()
    res["pcc_prefilled"] = summary(latencies_us(prefilled, inputs, args.warmup))
    with torch.no_grad():
        res["pcc_log_prob"] = summary(latencies_us(circuit.log_prob, inputs, args.warmup))
        ll = q(*inputs[0]).double().clone()
    del q, quiet, circuit
    torch.cuda.empty_cache()
    return ll


def run_pyjuice(model, case, batch: int, inputs, args, res: dict) -> torch.Tensor:
    import pyjuice as juice
    from pyjuice_bridge import convert
    pc = juice.compile(convert(model, case.pyjuice_block).root, verbose=False)
    pc.to(torch.device("cuda"))
    recorded = []

    def call(x, miss):
        with torch.no_grad():
            out = pc(x, missing_mask=miss, record_cudagraph=not recorded)
        recorded.append(True)
        return out
    res["pyjuice"] = summary(latencies_us(call, inputs, args.warmup))
    with torch.no_grad():
        ll = pc(inputs[0][0], missing_mask=inputs[0][1], force_use_fp32=True)[:, 0].double()
    del pc
    torch.cuda.empty_cache()
    return ll


def markdown(env: dict, rows: list[dict]) -> str:
    lines = [f"# Small-batch marginal latency: {env['gpu']}", "", f"`{env['command']}`", "",
             f"{env['gpu']}, torch {env['torch']}, pyjuice {env['pyjuice']}, pccompiler "
             f"{env['pccompiler']}, {env['date']}. Case {env['case']} ({env['edges'] / 1e6:.2f}M "
             f"edges), {int(MISSING_FRACTION * 100)}% of variables missing, {env['calls']} calls "
             f"after {env['warmup']} warm-up, host time per call to a synchronised result.", "",
             "| batch | path | p50 us | p99 us | mean us | min us |", "|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        for path in ("pcc_graphed", "pcc_prefilled", "pcc_log_prob", "pyjuice"):
            s = r.get(path)
            if s:
                lines.append(f"| {r['batch']} | {path} | {s['p50_us']:.1f} | {s['p99_us']:.1f} | "
                             f"{s['mean_us']:.1f} | {s['min_us']:.1f} |")
    lines.append("")
    for r in rows:
        extra = []
        if r.get("pcc_graphed"):
            extra.append(f"one graph replay {r['pcc_graphed']['replay_gpu_us']:.1f} us of GPU time "
                         f"({r.get('forward_layers')} forward layers)")
        if r.get("max_abs_diff_vs_pyjuice_fp32") is not None:
            extra.append(f"max |ll - PyJuice fp32| {r['max_abs_diff_vs_pyjuice_fp32']:.2e}")
        if r.get("errors"):
            extra.append(f"errors: {r['errors']}")
        lines.append(f"- batch {r['batch']}: " + "; ".join(extra))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="hclt128")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--libs", default="pcc,pyjuice")
    ap.add_argument("--precision", default="tf32")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("latency: needs a CUDA GPU", file=sys.stderr)
        return 2
    libs = {s.strip() for s in args.libs.split(",")}
    case = race_cases.select_cases(args.case)[0]
    model = case.build()
    import importlib.metadata as md

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"
    env = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "pyjuice": version("pyjuice"),
           "pccompiler": version("pccompiler") + (f" ({os.environ['PCC_COMMIT']})"
                                                  if os.environ.get("PCC_COMMIT") else ""),
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
           "case": case.name, "edges": race_cases.work_of(model).edges, "calls": args.calls,
           "warmup": args.warmup, "precision": args.precision}
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        res: dict = {"batch": batch}
        inputs = make_inputs(len(model.variables), batch, args.calls, seed=batch)
        lls = {}
        for lib, fn in (("pcc", run_pcc), ("pyjuice", run_pyjuice)):
            if lib not in libs:
                continue
            try:
                lls[lib] = (fn(model, batch, inputs, args, res) if lib == "pcc"
                            else fn(model, case, batch, inputs, args, res))
            except Exception as exc:     # one library failing must not lose the other
                res.setdefault("errors", {})[lib] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if len(lls) == 2:
            res["max_abs_diff_vs_pyjuice_fp32"] = float((lls["pcc"] - lls["pyjuice"]).abs().max())
        rows.append(res)
        print(json.dumps(res), flush=True)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = env["gpu"].lower().replace(" ", "-")
    stem = f"latency-{slug}-{dt.date.today().isoformat()}"
    md_path, js_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md_path.write_text(markdown(env, rows))
    js_path.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    if os.environ.get("OUT") and Path(os.environ["OUT"]).resolve() != out_dir.resolve():
        for p in (md_path, js_path):
            shutil.copy(p, Path(os.environ["OUT"]) / p.name)
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
