"""Cached compile against cold compile on every race case, one command.

For each case of bench/race_cases.py (default: all 12): build the Model,
then in a fresh layout-cache folder `pccompiler.compile(model, cache=folder)`
once cold (passes run, entry stored) and `--repeats` times cached (a hit: no
pass runs), with the same Model object, syncing the device after each. The
table gives the cold time, the fastest cached time and their ratio (issue
#16's target: under 10% on the H100 for every case). Cases are built one at
a time and dropped before the next, so peak memory is one case; a small
warm-up compile runs first so no case pays the process's one-time costs.

  .venv/bin/python bench/cached_vs_cold.py --cases hclt32,hmm256          # CPU
  PYTHONPATH=/tmp/pcc:bench python3 bench/cached_vs_cold.py --device cuda \\
      --backend triton --out $OUT/cached_vs_cold.md                        # H100

--input group compiles what the builder made (`pccompiler.compile(root)`,
each compile lowering it, as a user's script does) instead of the lowered
Model: the group's parameter bytes never enter protobuf (its Model refers
to the builder's arrays, `lower(external=True)`), so a hit has no copy out
of protobuf to pay. --input model is the race's `pcir.Model` object.

--clock cpu times the main thread's CPU seconds (user + system, page faults
included; time.thread_time) instead of the wall clock: on a shared CPU box
the wall clock also counts the time other processes hold the cores, which
swamps millisecond changes; the CPU clock does not. Not for a GPU target
(waiting for the device is not CPU time).
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

import pccompiler  # noqa: E402
import pccompiler.driver  # noqa: E402,F401  (default_backend)


# the clock every compile is timed with (--clock)
CLOCK = time.perf_counter


def _compile(model, backend: str, device: str, folder: str) -> float:
    gc.collect()
    start = CLOCK()
    circuit = pccompiler.compile(model, backend=backend, device=device, cache=folder)
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
    seconds = CLOCK() - start
    del circuit
    return seconds


def run_case(case, backend: str, device: str, repeats: int, save: str = "",
             source: str = "model") -> dict:
    t0 = time.perf_counter()
    model = case.build() if source == "model" else case.root()
    build = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="pcc-cvc-") as folder:
        cold = _compile(model, backend, device, folder)
        cached = min(_compile(model, backend, device, folder) for _ in range(repeats))
        if save:        # for bench/pcc_load_bench.py --pcc (no second build)
            pccompiler.compile(model, backend=backend, device=device, cache=folder).save(save)
    del model
    gc.collect()
    row = {"case": case.name, "build": build, "cold": cold, "cached": cached}
    print(f"{case.name:10s} build {build:6.1f} s  cold {cold:7.3f} s  cached {cached:7.3f} s  "
          f"{100 * cached / cold:5.1f}%", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="all")
    ap.add_argument("--backend", default=None, help="default: pccompiler's default backend")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2, help="cached compiles per case (fastest kept)")
    ap.add_argument("--out", default="", help="also write the markdown table here")
    ap.add_argument("--save-pcc", default="", metavar="CASE=PATH",
                    help="also save CASE's compiled circuit as the .pcc PATH")
    ap.add_argument("--input", choices=("model", "group"), default="model",
                    help="compile the lowered Model (default) or the builder's group")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: time.perf_counter; cpu: the main thread's CPU time (a shared box)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    save_case, _, save_path = args.save_pcc.partition("=")
    backend = args.backend or pccompiler.driver.default_backend()
    start = time.perf_counter()
    # One-time process costs (imports, JIT, CUDA context) would land in the
    # first case's cold compile: pay them on a small case first, unreported.
    with tempfile.TemporaryDirectory(prefix="pcc-cvc-warm-") as folder:
        _compile(race_cases.quick_case().build(), backend, args.device, folder)
    rows = [run_case(c, backend, args.device, args.repeats,
                     save_path if c.name == save_case else "", args.input)
            for c in race_cases.select_cases(args.cases)]
    lines = [f"`{' '.join(['python3'] + sys.argv)}`", "",
             f"Machine: {platform.node()}, {os.cpu_count()} CPUs; backend {backend}, device "
             f"{args.device}" + (f" ({_gpu_name()})" if args.device.startswith("cuda") else "")
             + f"; input {args.input}; clock {args.clock}; cached = fastest of {args.repeats}; "
             f"load average {os.getloadavg()[0]:.2f}; wall {time.perf_counter() - start:.0f} s",
             "", "| case | cold s | cached s | cached / cold |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['cold']:.3f} | {r['cached']:.3f} | "
                     f"{100 * r['cached'] / r['cold']:.1f}% |")
    worst = max(rows, key=lambda r: r["cached"] / r["cold"])
    lines += ["", f"Worst ratio: {worst['case']} {100 * worst['cached'] / worst['cold']:.1f}%"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def _gpu_name() -> str:
    import torch
    return torch.cuda.get_device_name()


if __name__ == "__main__":
    main()
