"""Side-by-side race: pccompiler (triton backend) against PyJuice 2.6.3.

Both libraries run OUR circuit with OUR parameters in one process on one
GPU (PyJuice through bench/pyjuice_bridge.py), on the same random batches:

  compile   pccompiler cold (fresh layout cache dir), pccompiler warm (cache
            hit), PyJuice bridge + `juice.compile`; the first step (kernel JIT,
            autotuning, PyJuice's CUDA-graph recording) is reported apart.
  epoch     117 batches of 512 (59,904 samples, the 60,000 of an MNIST
            epoch with the last partial batch dropped): forward + backward +
            mini-batch EM (step 0.1, pseudocount 0.1). pccompiler:
            `circuit.em_step(x, ...)`; PyJuice: `lls = pc(x);
            lls.mean().backward(); opt.step()` with MiniBatchEM.
  forward   the same batches under no_grad, log-likelihoods only.
  memory    peak of torch.cuda.max_memory_allocated over a library's whole
            phase (compile, training, forward), minus what was allocated
            when the phase began (the shared data); the other library's
            tensors are freed first.
  agreement per-sample log-likelihood of one batch, before any training:
            pccompiler-triton against PyJuice (default bf16 matmuls and
            force_use_fp32) and against pccompiler-torch.

    python bench/race.py --cases all                 # everything (see README)
    python bench/race.py --quick                     # smoke test, one small case
Writes bench/results/race-<gpu>-<date>.md / .json and copies them to $OUT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402
from race_report import write_reports  # noqa: E402

STEP_SIZE, PSEUDOCOUNT = 0.1, 0.1


class CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CaseTimeout("per-case time limit reached")


def free_gpu() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, wall seconds) with the GPU synchronised on both ends."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def epoch_seconds(step: Callable[[torch.Tensor], Any], batches: torch.Tensor, repeats: int,
                  budget_end: float) -> list[float]:
    """CUDA-event time of full passes over `batches` (at least one; more
    while `repeats` and the case's time budget allow)."""
    times: list[float] = []
    while len(times) < repeats:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for b in range(batches.shape[0]):
            step(batches[b])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
        if time.monotonic() + times[-1] > budget_end:
            break
    return times


class PeakMemory:
    """Peak allocated bytes of a phase above the bytes allocated at its start."""

    def __enter__(self):
        free_gpu()
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()
        self.peak = 0
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize()
        self.peak = torch.cuda.max_memory_allocated() - self.base
        return False


def time_steps(first_step, train_step, forward_step, batches, args, res: dict,
               budget_end: float) -> None:
    """The timed part of a library's run, the same for both: the first
    training step, `args.warmup` warm-up batches of both kinds, then the
    training and forward epochs (`epoch_seconds`)."""
    _, res["first_step_s"] = timed(lambda: first_step(batches[0]))
    for b in range(min(args.warmup, batches.shape[0])):
        train_step(batches[b])
        forward_step(batches[b])
    torch.cuda.synchronize()
    res["epoch_runs_s"] = epoch_seconds(train_step, batches, args.repeats, budget_end)
    res["forward_runs_s"] = epoch_seconds(forward_step, batches, args.repeats, budget_end)


def run_pccompiler(model, batches, x_ll, args, res: dict, budget_end: float) -> np.ndarray | None:
    import pccompiler
    ll = None
    with PeakMemory() as mem, tempfile.TemporaryDirectory(prefix="pcc-race-cache-") as cache:
        circuit, res["compile_cold_s"] = timed(lambda: pccompiler.compile(
            model, backend="triton", device="cuda", cache=cache))
        circuit = None
        free_gpu()
        circuit, res["compile_warm_s"] = timed(lambda: pccompiler.compile(
            model, backend="triton", device="cuda", cache=cache))
        with torch.no_grad():
            ll, res["first_forward_s"] = timed(lambda: circuit.log_prob(x_ll).double().cpu().numpy())

        def train_step(x):
            circuit.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)

        def forward_step(x):
            with torch.no_grad():
                circuit.log_prob(x)

        time_steps(train_step, train_step, forward_step, batches, args, res, budget_end)
        circuit = None
    res["peak_gb"] = mem.peak / 1e9
    free_gpu()
    return ll


def run_pccompiler_torch(model, x_ll) -> np.ndarray:
    import pccompiler
    circuit = pccompiler.compile(model, backend="torch", device="cuda")
    with torch.no_grad():
        ll = circuit.log_prob(x_ll).double().cpu().numpy()
    circuit = None
    free_gpu()
    return ll


def run_pyjuice(model, case, batches, x_ll, args, res: dict, budget_end: float) -> dict:
    import pyjuice as juice
    from pyjuice_bridge import convert
    lls: dict[str, np.ndarray] = {}
    with PeakMemory() as mem:
        bridge, res["bridge_s"] = timed(lambda: convert(model, case.pyjuice_block))
        pc, res["compile_s"] = timed(lambda: juice.compile(bridge.root, verbose=False))
        pc.to(torch.device("cuda"))
        res["num_edges"] = int(pc.num_edges)
        res["block_sizes"] = sorted(set(bridge.block_sizes.values()))
        bridge = None
        with torch.no_grad():
            lls["bf16"], res["first_forward_s"] = timed(
                lambda: pc(x_ll)[:, 0].double().cpu().numpy())
            lls["fp32"] = pc(x_ll, force_use_fp32=True)[:, 0].double().cpu().numpy()
        opt = juice.optim.MiniBatchEM(pc, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)

        def first_step(x):
            lls_ = pc(x, record_cudagraph=args.pyjuice_cudagraph)
            lls_.mean().backward()
            opt.step()

        def train_step(x):
            lls_ = pc(x)
            lls_.mean().backward()
            opt.step()

        def forward_step(x):
            with torch.no_grad():
                pc(x)

        time_steps(first_step, train_step, forward_step, batches, args, res, budget_end)
        pc = opt = None
    res["peak_gb"] = mem.peak / 1e9
    free_gpu()
    return lls


def agreement(a: np.ndarray | None, b: np.ndarray | None) -> dict | None:
    if a is None or b is None:
        return None
    diff = np.abs(a - b)
    return {"max_abs": float(diff.max()), "max_rel": float((diff / np.maximum(np.abs(b), 1e-30)).max()),
            "mean_ll_a": float(a.mean()), "mean_ll_b": float(b.mean())}


def _phase(res: dict, key: str, fn: Callable[[], Any]) -> Any:
    """Run one phase; an exception is recorded under res['errors'][key]."""
    try:
        return fn()
    except CaseTimeout:
        raise
    except Exception as exc:  # one library failing must not lose the other
        res.setdefault("errors", {})[key] = f"{type(exc).__name__}: {exc}"
        res.setdefault("tracebacks", {})[key] = traceback.format_exc(limit=8)
        print(f"  [{key}] failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        free_gpu()
        return None


def data_dtype(choice: str, num_cats: int) -> torch.dtype:
    """The batches' dtype, the same for both libraries: `auto` stores
    categories as uint8 when they fit (MNIST's own pixel format; then no value
    can be out of range and pccompiler runs no per-batch check), else int64."""
    if choice == "int64" or num_cats > 256:
        return torch.long
    return torch.uint8


def run_case(case: race_cases.Case, args) -> dict:
    res: dict[str, Any] = {"name": case.name, "description": case.description, "pcc": {},
                           "pyjuice": {}, "notes": case.notes}
    budget_end = time.monotonic() + args.time_limit
    lls: dict[str, np.ndarray | None] = {}
    signal.alarm(int(args.time_limit))
    try:
        model, res["build_s"] = timed(case.build)
        work = race_cases.work_of(model)
        res.update(edges=work.edges, sum_edges=work.sum_edges, nodes=work.nodes,
                   params=work.params, kept_fraction=case.kept_fraction)
        num_vars = len(model.variables)
        gen = torch.Generator(device="cuda").manual_seed(race_cases.SEED)
        dtype = data_dtype(args.dtype, case.num_cats)
        res["data_dtype"] = str(dtype).replace("torch.", "")
        batches = torch.randint(0, case.num_cats, (args.batches, args.batch, num_vars),
                                generator=gen, device="cuda", dtype=dtype)
        x_ll = torch.randint(0, case.num_cats, (args.batch, num_vars), generator=gen,
                             device="cuda", dtype=dtype)
        if "pcc" in args.libs:
            lls["pcc"] = _phase(res, "pcc", lambda: run_pccompiler(
                model, batches, x_ll, args, res["pcc"], budget_end))
        if "pyjuice" in args.libs:
            pj = _phase(res, "pyjuice", lambda: run_pyjuice(
                model, case, batches, x_ll, args, res["pyjuice"], budget_end)) or {}
            lls["pyjuice_bf16"], lls["pyjuice_fp32"] = pj.get("bf16"), pj.get("fp32")
        if "pcc" in args.libs and args.torch_ll:
            lls["pcc_torch"] = _phase(res, "pcc_torch", lambda: run_pccompiler_torch(model, x_ll))
        batches = x_ll = model = None
    except CaseTimeout as exc:
        res.setdefault("errors", {})["case"] = f"{exc} ({args.time_limit} s)"
    except Exception as exc:
        res.setdefault("errors", {})["case"] = f"{type(exc).__name__}: {exc}"
        res.setdefault("tracebacks", {})["case"] = traceback.format_exc(limit=8)
    finally:
        signal.alarm(0)
        free_gpu()
    res["agreement"] = {
        "triton_vs_pyjuice_fp32": agreement(lls.get("pcc"), lls.get("pyjuice_fp32")),
        "triton_vs_pyjuice_bf16": agreement(lls.get("pcc"), lls.get("pyjuice_bf16")),
        "triton_vs_torch": agreement(lls.get("pcc"), lls.get("pcc_torch")),
    }
    for lib in ("pcc", "pyjuice"):
        r = res[lib]
        for key in ("epoch", "forward"):
            runs = r.get(f"{key}_runs_s")
            if runs:
                r[f"{key}_s"] = statistics.median(runs)
    return res


def environment(args) -> dict:
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            module = sys.modules.get(name)
            return getattr(module, "__version__", "not installed")

    import pccompiler  # noqa: F401  (for the version fallback)
    try:    # PCC_COMMIT: set where the copy of the tree has no (or a stale) .git
        commit = os.environ.get("PCC_COMMIT") or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parent,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "triton": version("triton"), "pyjuice": version("pyjuice"),
        "pccompiler": version("pccompiler") + (f" ({commit})" if commit else ""),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "batch": args.batch, "batches": args.batches, "step_size": STEP_SIZE,
        "pseudocount": PSEUDOCOUNT, "repeats": args.repeats,
        "pyjuice_cudagraph": args.pyjuice_cudagraph,
        "torch_matmul_precision": torch.get_float32_matmul_precision(),
        "torch_cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Time pccompiler (triton) against PyJuice 2.6.3 on the same circuits and "
                    "parameters: compile, training epoch, forward epoch, peak memory, "
                    "log-likelihood agreement. Needs a CUDA GPU and pyjuice importable.")
    ap.add_argument("--cases", default="all",
                    help="comma list of cases or groups (all, structures, hclt, pd, hmm, bsp; "
                         "cases: " + ", ".join(race_cases.all_cases()) + ")")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: one small HMM, 8 batches, no repeats")
    ap.add_argument("--time-limit", type=float, default=150.0, help="seconds per case (default 150)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--samples", type=int, default=60_000,
                    help="samples per epoch; batches = samples // batch (default 60000)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed epochs per measurement, median reported (default 1)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up batches (default 3)")
    ap.add_argument("--dtype", choices=["auto", "int64"], default="auto",
                    help="data dtype given to both libraries: auto = uint8 when the categories "
                         "fit (256), else int64 (default auto)")
    ap.add_argument("--libs", default="pcc,pyjuice", help="pcc, pyjuice or both (default)")
    ap.add_argument("--no-torch-ll", dest="torch_ll", action="store_false",
                    help="skip the pccompiler-torch log-likelihood check")
    ap.add_argument("--no-pyjuice-cudagraph", dest="pyjuice_cudagraph", action="store_false",
                    help="do not record PyJuice's CUDA graphs (recorded by default, as its examples do)")
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--tag", default="", help="suffix for the result file names")
    args = ap.parse_args(argv)
    args.libs = {s.strip() for s in args.libs.split(",") if s.strip()}
    args.batches = max(1, args.samples // args.batch)
    if args.quick:
        args.batches, args.repeats, args.warmup = min(args.batches, 8), 1, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("race: needs a CUDA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    cases = [race_cases.quick_case()] if args.quick else race_cases.select_cases(args.cases)
    signal.signal(signal.SIGALRM, _on_alarm)
    env = environment(args)
    print(f"race: {env['gpu']}, torch {env['torch']}, triton {env['triton']}, "
          f"pyjuice {env['pyjuice']}, pccompiler {env['pccompiler']}", flush=True)
    results = []
    for case in cases:
        t0 = time.perf_counter()
        print(f"== {case.name}: {case.description}", flush=True)
        res = run_case(case, args)
        results.append(res)
        pcc, pj = res["pcc"], res["pyjuice"]
        print(f"   {time.perf_counter() - t0:.1f} s; epoch pcc {pcc.get('epoch_s')} pyjuice "
              f"{pj.get('epoch_s')}; forward pcc {pcc.get('forward_s')} pyjuice "
              f"{pj.get('forward_s')}; errors {list(res.get('errors', {}))}", flush=True)
    tag = ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    paths = write_reports(env, results, Path(args.out_dir), tag, os.environ.get("OUT"))
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
