"""One size of the scale sweep, in its own process (bench/scale.py runs it).

A child builds ONE circuit (HCLT or PD at one latent count), then times each
library named by --libs on it, one after the other, and appends one JSON
line per library to --result as soon as that library is done, so a later
OOM, crash or time-out (the parent kills the process group) loses nothing
already measured.

Per library:
  build_s       our Model from race_cases (random parameters, fixed seed),
                shared by both libraries (timed once, reported on each row)
  compile_s     pccompiler: `pccompiler.compile(model, backend="triton",
                device="cuda")`, no layout cache; PyJuice: bridge convert +
                `juice.compile` + `.to(cuda)`
  first_step_s  the first training step (kernel JIT, autotuning, graph
                capture or PyJuice's CUDA-graph recording)
  step_s        mean of --steps training steps (batch 512: forward + backward
                + mini-batch EM, step 0.1, pseudocount 0.1) after --warmup
                steps (host clock, GPU synchronised); epoch_s = step_s x 117
                (59,904 of MNIST's 60,000 samples, as bench/race.py), an
                extrapolation from those steps
  peak_gb       torch.cuda.max_memory_allocated over the library's phase
  status        "ok", "oom" (CUDA out of memory anywhere in the phase) or
                "error" (message kept)

`--libs compile` instead measures the CPU side of our compile alone (build,
passes, the kernel plan) with the process's peak RSS: how compile time and
host memory grow with the circuit, without a GPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

STEP_SIZE, PSEUDOCOUNT = 0.1, 0.1
EPOCH_BATCHES = 117          # 59,904 samples of 60,000 at batch 512 (bench/race.py)


def peak_rss_gb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def is_oom(exc: BaseException) -> bool:
    """CUDA out-of-memory, as torch or a Triton launch reports it."""
    import torch
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "cudaerrormemoryallocation" in text


def sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(step, batches, warmup: int, steps: int) -> tuple[float, float]:
    """(first step seconds, mean seconds of `steps` steps after `warmup`),
    host clock around synchronised GPU work (CUDA events would not tell
    more over whole steps)."""
    device = str(batches.device)
    sync(device)
    t0 = time.perf_counter()
    step(batches[0])
    sync(device)
    first = time.perf_counter() - t0
    for i in range(warmup):
        step(batches[(1 + i) % batches.shape[0]])
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(batches[i % batches.shape[0]])
    sync(device)
    return first, (time.perf_counter() - t0) / steps


def run_pcc(model, batches, args, row: dict) -> None:
    import pccompiler
    t0 = time.perf_counter()
    circuit = pccompiler.compile(model, backend="triton", device=args.device, check=False,
                                 precision=args.precision)
    row["compile_s"] = time.perf_counter() - t0

    def step(x):
        circuit.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)
    row["first_step_s"], row["step_s"] = time_steps(step, batches, args.warmup, args.steps)


def run_pyjuice(model, case, batches, args, row: dict) -> None:
    import torch
    import pyjuice as juice
    from pyjuice_bridge import convert
    t0 = time.perf_counter()
    bridge = convert(model, case.pyjuice_block)
    pc = juice.compile(bridge.root, verbose=False)
    pc.to(torch.device("cuda"))
    torch.cuda.synchronize()
    row["compile_s"] = time.perf_counter() - t0
    row["pyjuice_edges"] = int(pc.num_edges)
    del bridge
    opt = juice.optim.MiniBatchEM(pc, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)
    recorded = []

    def step(x):
        lls = pc(x, record_cudagraph=not recorded)   # record on the first step, as race.py
        recorded.append(True)
        lls.mean().backward()
        opt.step()
    row["first_step_s"], row["step_s"] = time_steps(step, batches, args.warmup, args.steps)


def run_compile_only(model, args, row: dict) -> None:
    """Passes and kernel plan on the CPU (no device memory is touched)."""
    from pccompiler import passes
    from pccompiler.backends.triton import TritonBackend
    from pccompiler.backends.triton.plan import build_plan
    from pccompiler.backends.triton.scratch import compact_remap
    t0 = time.perf_counter()
    result = passes.compile_model(model, backend="triton", verify=False,
                                  block_limit=TritonBackend.block_limit)
    row["passes_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    build_plan(result.layout, "cpu", compact_remap(result.layout))
    row["plan_s"] = time.perf_counter() - t1
    row["compile_s"] = row["passes_s"] + row["plan_s"]


def run_lib(lib: str, model, case, batches, args, base: dict) -> dict:
    row = dict(base, lib=lib, status="ok")
    try:
        if lib == "compile":
            run_compile_only(model, args, row)
        elif not args.device.startswith("cuda"):       # the CPU smoke run (interpreter)
            if lib != "pcc":
                raise RuntimeError(f"{lib} runs on CUDA only")
            run_pcc(model, batches, args, row)
        else:
            import torch
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                if lib == "pcc":
                    run_pcc(model, batches, args, row)
                else:
                    run_pyjuice(model, case, batches, args, row)
            finally:
                row["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        if "step_s" in row:
            row["epoch_s"] = row["step_s"] * EPOCH_BATCHES
    except Exception as exc:   # one library failing must not lose the other
        row["status"] = "oom" if lib != "compile" and is_oom(exc) else "error"
        row["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        if row["status"] == "error":
            row["traceback"] = traceback.format_exc(limit=6)
    row["peak_rss_gb"] = peak_rss_gb()
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("structure", choices=["hclt", "pd"])
    ap.add_argument("latents", type=int)
    ap.add_argument("--libs", default="pcc,pyjuice", help="pcc, pyjuice (in order) or compile")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--precision", default="tf32")
    ap.add_argument("--device", default="cuda",
                    help="cuda (default); cpu runs pcc under TRITON_INTERPRET=1 (the tests, on "
                         "tiny circuits: the sweep's 784-variable ones take minutes a step)")
    ap.add_argument("--result", required=True, help="JSON-lines file to append rows to")
    args = ap.parse_args(argv)
    libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    case = race_cases.case_for(args.structure, args.latents, validate=False)
    t0 = time.perf_counter()
    model = case.build()
    base = {"structure": args.structure, "latents": args.latents, "case": case.name,
            "build_s": time.perf_counter() - t0, "batch": args.batch, "steps": args.steps,
            "warmup": args.warmup, "precision": args.precision}
    base["edges"] = race_cases.work_of(model).edges
    print(f"  {case.name}: {base['edges'] / 1e6:.1f}M edges, built in {base['build_s']:.1f} s, "
          f"rss {peak_rss_gb():.1f} GB", flush=True)
    batches = None
    if libs != ["compile"]:
        import torch
        gen = torch.Generator(device=args.device).manual_seed(race_cases.SEED)
        count = max(2, min(args.steps, 8))
        batches = torch.randint(0, case.num_cats, (count, args.batch, len(model.variables)),
                                generator=gen, device=args.device, dtype=torch.uint8)
    for lib in libs:
        row = run_lib(lib, model, case, batches, args, base)
        with open(args.result, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"  {case.name} {lib}: {row['status']} "
              + " ".join(f"{k} {row[k]:.3f}" for k in ("compile_s", "first_step_s", "epoch_s",
                                                       "peak_gb", "peak_rss_gb") if k in row)
              + (f" ({row['error'][:200]})" if "error" in row else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
