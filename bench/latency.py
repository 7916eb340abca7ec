"""Small-batch marginal queries: per-call latency at batch 1 and 8.

On the race's hclt128 (784 vars x 256 cats, 9.3M edges), log p(x) with about
30% of the variables missing (marginalised), each call on a new batch
already on the GPU, timed on the host from the call to the result being
ready (torch.cuda.synchronize), over --calls calls after --warmup:

  pcc persistent  q = circuit.graphed_query(B, dtype=uint8, persistent="on"):
                  the same call, its graph one fill of the bad-category
                  flag + ONE launch of the persistent forward (every layer
                  in one kernel, dependencies resolved inside it:
                  backends/triton/persistent*.py); B <= 16
  pcc graphed     the same with persistent="off": two buffer copies + one
                  CUDA-graph replay of the layer-by-layer forward + the
                  read of the bad-category flag (the sync)
  pcc prefilled   the same graph, inputs written into q.x / q.missing
                  beforehand, check=False: the replay alone
  pcc log_prob    circuit.log_prob(x, missing): the public eager-API path
                  (its own graph cache claims the first batch size it sees)
  pyjuice         pc(x, missing_mask=missing) under no_grad, its CUDA graph
                  recorded on the first call (inner layers; inputs eager)

Also: the GPU time of one replay (CUDA events over --calls back-to-back
replays), the persistent path's items / grid / levels (the chain of
in-kernel waits), its largest difference from the layer path, and the
largest log-likelihood difference against PyJuice fp32. pcc prefilled and
pcc log_prob run only with --extras (after every batch's main paths).
--sweep times the persistent path at the first batch with one knob changed
per variant (rows, chunk, wide, grid, spread, warps, poll: see
backends/triton/persistent.py), e.g. --sweep "rows=32 grid=264 poll=0".

Floor: one pass over the sum weights from HBM (bytes / 3.35 TB/s, the H100
SXM's peak) is what a one-launch forward spread over every SM cannot beat;
a single CTA streams at a small fraction of that.

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


HBM_BYTES_PER_S = 3.35e12     # H100 SXM HBM3 peak (the floor line)
# --sweep knob names -> the defaults of backends/triton/persistent.py (read
# when a query builds its runner)
KNOBS = {"rows": "ROWS", "chunk": "CHUNK", "wide": "WIDE", "grid": "GRID", "spread": "SPREAD",
         "warps": "NUM_WARPS", "poll": "POLL_ATOMIC"}


def knob_values(variant: str) -> dict:
    """'rows=32/poll=0' -> {'ROWS': 32, 'POLL_ATOMIC': False}."""
    out = {}
    for part in filter(None, variant.split("/")):
        key, _, val = part.partition("=")
        if key not in KNOBS or not val.isdigit():
            raise SystemExit(f"latency: --sweep variant {variant!r}: knobs are "
                             f"{', '.join(KNOBS)} as name=integer")
        out[KNOBS[key]] = bool(int(val)) if key == "poll" else int(val)
    return out


def persistent_query(circuit, batch: int, knobs: dict):
    """graphed_query(persistent="on") with the persistent defaults set to
    `knobs` while its runner is built (restored after)."""
    from pccompiler.backends.triton import persistent
    saved = {name: getattr(persistent, name) for name in knobs}
    try:
        for name, val in knobs.items():
            setattr(persistent, name, val)
        return circuit.graphed_query(batch, dtype=torch.uint8, persistent="on")
    finally:
        for name, val in saved.items():
            setattr(persistent, name, val)


def run_pcc(circuit, batch: int, inputs, args, res: dict) -> torch.Tensor:
    """The persistent path (B <= 16) and the layer graph; returns log p of inputs[0]."""
    from pccompiler.backends.triton.persistent import B_MAX
    lls = {}
    if batch <= B_MAX and "on" in args.persistent:
        q = persistent_query(circuit, batch, {})
        res["pcc_persistent"] = summary(latencies_us(q, inputs, args.warmup))
        res["pcc_persistent"]["replay_gpu_us"] = replay_gpu_us(q, len(inputs))
        run = q.persistent
        res["persistent"] = {**run.tables.summary(), "grid": run.grid, "chunk": run.chunk,
                             "num_warps": run.num_warps, "poll_atomic": run.poll_atomic}
        lls["on"] = q(*inputs[0]).double().clone()
        del q
    if "off" in args.persistent:
        q = circuit.graphed_query(batch, dtype=torch.uint8, persistent="off")
        res["pcc_graphed"] = summary(latencies_us(q, inputs, args.warmup))
        res["pcc_graphed"]["replay_gpu_us"] = replay_gpu_us(q, len(inputs))
        res["forward_layers"] = len(q.plan.layers)
        lls["off"] = q(*inputs[0]).double().clone()
        del q
    if len(lls) == 2:
        res["max_abs_diff_persistent_vs_layers"] = float((lls["on"] - lls["off"]).abs().max())
    return lls.get("on", lls.get("off"))


def run_pyjuice(model, case, batch: int, inputs, args, res: dict) -> torch.Tensor:
    """PyJuice 2.6.3 at the same batch: pc(x, missing_mask=...) under no_grad,
    replayed from its own CUDA graph (recorded on the first call); returns
    its fp32 log-likelihoods of the first input for the comparison."""
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
    pc = None                    # free its buffers before the next batch
    torch.cuda.empty_cache()
    return ll


def run_extras(circuit, batch: int, inputs, args, res: dict) -> None:
    """The layer graph with inputs pre-filled, and the eager log_prob."""
    quiet = circuit.graphed_query(batch, dtype=torch.uint8, check=False, persistent="off")
    quiet(*inputs[0])

    def prefilled(x, miss):
        quiet()
    res["pcc_prefilled"] = summary(latencies_us(prefilled, inputs, args.warmup))
    with torch.no_grad():
        res["pcc_log_prob"] = summary(latencies_us(circuit.log_prob, inputs, args.warmup))


def sweep_variant(circuit, batch: int, inputs, args, variant: str) -> dict:
    """The persistent path with the knobs of `variant` ("default": none):
    GPU time of a replay and host p50; a failure is recorded, not fatal."""
    row: dict = {"variant": variant, "batch": batch}
    try:
        q = persistent_query(circuit, batch, {} if variant == "default"
                             else knob_values(variant))
        row.update(summary(latencies_us(q, inputs[:500], args.warmup)))
        row["replay_gpu_us"] = replay_gpu_us(q, len(inputs))
        row.update(items=q.persistent.tables.n_items, grid=q.persistent.grid,
                   levels=q.persistent.tables.depth)
        del q
    except Exception as exc:     # a variant that does not compile or fit: say so
        row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    print(json.dumps(row), flush=True)
    return row


def markdown(env: dict, rows: list[dict], sweep: list[dict]) -> str:
    lines = [f"# Small-batch marginal latency: {env['gpu']}", "", f"`{env['command']}`", "",
             f"{env['gpu']}, torch {env['torch']}, pyjuice {env['pyjuice']}, pccompiler "
             f"{env['pccompiler']}, {env['date']}. Case {env['case']} ({env['edges'] / 1e6:.2f}M "
             f"edges), {int(MISSING_FRACTION * 100)}% of variables missing, {env['calls']} calls "
             f"after {env['warmup']} warm-up, host time per call to a synchronised result.", "",
             f"Floor: the sum weights are {env['sum_params'] / 1e6:.2f}M fp32 = "
             f"{env['sum_params'] * 4 / 1e6:.1f} MB; one pass over them at "
             f"{HBM_BYTES_PER_S / 1e12:.2f} TB/s takes {env['floor_us']:.1f} us, so a forward "
             "under 50 us must spread that pass over every SM in one launch.", "",
             "| batch | path | p50 us | p99 us | mean us | min us | replay GPU us |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for path in ("pcc_persistent", "pcc_graphed", "pcc_prefilled", "pcc_log_prob", "pyjuice"):
            s = r.get(path)
            if s:
                gpu = f"{s['replay_gpu_us']:.1f}" if "replay_gpu_us" in s else ""
                lines.append(f"| {r['batch']} | {path} | {s['p50_us']:.1f} | {s['p99_us']:.1f} | "
                             f"{s['mean_us']:.1f} | {s['min_us']:.1f} | {gpu} |")
    lines.append("")
    for r in rows:
        extra = []
        if r.get("persistent"):
            p = r["persistent"]
            extra.append(f"persistent: {p['items']} items ({p['input_items']} input, "
                         f"{p['product_items']} product, {p['sum_items']} sum) in {p['levels']} "
                         f"levels (the chain of in-kernel waits), grid {p['grid']}, rows "
                         f"{p['rows']}, chunk {p['chunk']}, warps {p['num_warps']}")
        if r.get("forward_layers"):
            extra.append(f"layer graph: {r['forward_layers']} forward layers")
        for key, label in (("max_abs_diff_persistent_vs_layers", "max |ll persistent - layers|"),
                           ("max_abs_diff_vs_pyjuice_fp32", "max |ll - PyJuice fp32|")):
            if r.get(key) is not None:
                extra.append(f"{label} {r[key]:.2e}")
        if r.get("errors"):
            extra.append(f"errors: {r['errors']}")
        lines.append(f"- batch {r['batch']}: " + "; ".join(extra))
    if sweep:
        lines += ["", f"Persistent knobs at batch {sweep[0].get('batch', '')} (one changed per "
                  "variant from the defaults):", "",
                  "| variant | replay GPU us | p50 us | items | grid | levels |",
                  "|---|---:|---:|---:|---:|---:|"]
        for v in sweep:
            if "error" in v:
                lines.append(f"| {v['variant']} | {v['error']} | | | | |")
            else:
                lines.append(f"| {v['variant']} | {v['replay_gpu_us']:.1f} | {v['p50_us']:.1f} | "
                             f"{v['items']} | {v['grid']} | {v['levels']} |")
    return "\n".join(lines) + "\n"


def write_results(env: dict, rows: list[dict], sweep: list[dict], out_dir: Path) -> Path:
    """The markdown and JSON files (rewritten after every stage, so a
    timeout keeps what finished), copied to $OUT when set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = env["gpu"].lower().replace(" ", "-")
    stem = f"latency-{slug}-{dt.date.today().isoformat()}"
    md_path, js_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md_path.write_text(markdown(env, rows, sweep))
    js_path.write_text(json.dumps({"env": env, "rows": rows, "sweep": sweep}, indent=1))
    if os.environ.get("OUT") and Path(os.environ["OUT"]).resolve() != out_dir.resolve():
        for p in (md_path, js_path):
            shutil.copy(p, Path(os.environ["OUT"]) / p.name)
    return md_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="hclt128")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--libs", default="pcc,pyjuice")
    ap.add_argument("--precision", default="tf32")
    ap.add_argument("--persistent", default="on,off",
                    help="pcc paths: on = the persistent forward (batches <= 16), off = the "
                         "layer graph")
    ap.add_argument("--sweep", default="",
                    help="persistent variants at the first batch, one knob each, e.g. "
                         "'rows=32 grid=264 poll=0' (a/b joins two knobs: rows=32/warps=8)")
    ap.add_argument("--extras", action="store_true",
                    help="also pcc prefilled and the eager log_prob (after every batch)")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("latency: needs a CUDA GPU", file=sys.stderr)
        return 2
    for variant in args.sweep.split():
        knob_values(variant)            # a bad variant fails before any work
    libs = {s.strip() for s in args.libs.split(",")}
    case = race_cases.select_cases(args.case)[0]
    model = case.build()
    import importlib.metadata as md

    def version(name):
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"
    import pccompiler
    circuit = pccompiler.compile(model, backend="triton", device="cuda", check=False,
                                 precision=args.precision) if "pcc" in libs else None
    sum_params = circuit.engine.num_sum_params if circuit is not None else 0
    env = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "pyjuice": version("pyjuice"),
           "pccompiler": version("pccompiler") + (f" ({os.environ['PCC_COMMIT']})"
                                                  if os.environ.get("PCC_COMMIT") else ""),
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
           "case": case.name, "edges": race_cases.work_of(model).edges, "calls": args.calls,
           "warmup": args.warmup, "precision": args.precision, "sum_params": sum_params,
           "floor_us": sum_params * 4 / HBM_BYTES_PER_S * 1e6}
    out_dir = Path(args.out_dir)
    rows: list[dict] = []
    sweep: list[dict] = []
    batches = [int(b) for b in args.batches.split(",")]
    inputs_of = {b: make_inputs(len(model.variables), b, args.calls, seed=b) for b in batches}
    for batch in batches:        # every batch's main paths before anything optional
        res: dict = {"batch": batch}
        inputs = inputs_of[batch]
        lls = {}
        for lib in ("pcc", "pyjuice"):
            if lib not in libs:
                continue
            try:
                lls[lib] = (run_pcc(circuit, batch, inputs, args, res) if lib == "pcc"
                            else run_pyjuice(model, case, batch, inputs, args, res))
            except Exception as exc:     # one library failing must not lose the other
                res.setdefault("errors", {})[lib] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if len(lls) == 2 and lls["pcc"] is not None:
            res["max_abs_diff_vs_pyjuice_fp32"] = float((lls["pcc"] - lls["pyjuice"]).abs().max())
        rows.append(res)
        print(json.dumps(res), flush=True)
        write_results(env, rows, sweep, out_dir)
    if circuit is not None and args.extras:
        for res in rows:
            try:
                run_extras(circuit, res["batch"], inputs_of[res["batch"]], args, res)
            except Exception as exc:
                res.setdefault("errors", {})["extras"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            write_results(env, rows, sweep, out_dir)
    if circuit is not None and args.sweep:
        for variant in ["default"] + args.sweep.split():
            sweep.append(sweep_variant(circuit, batches[0], inputs_of[batches[0]], args, variant))
            write_results(env, rows, sweep, out_dir)
    md_path = write_results(env, rows, sweep, out_dir)
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
