"""Where the host time of `pccompiler.load` goes, checkers first (issue #16).

For each case (a race case built, compiled with torch on the CPU and saved
as a .pcc, or a .pcc given with --pcc), from a warm page cache, the fastest
of `--repeats` runs of each phase:

  read          `ir.artifact.read_pcc(path, check=False)`: mmap, manifest,
                section hashes (params hashed inline here), protobuf parse
  model check   `ir.check(mapped_model, arrays=...)`, the Model checker
  layout check  `ir.check_layout(layout, mapped_model, model_hash=...)`, the
                Layout checker given the hash, as the loader calls it
  hash          `ir.structure_hash(mapped_model)` (the loader compares the
                layout's model_hash with it)
  backend       `driver.compile_with_arrays`: engine build and parameter
                packing from the mapped arrays ("upload" on a GPU)
  load          `pccompiler.load(path)` end to end, checkers included (the
                per-process memo of checked files is cleared each time)

`--baseline REF` also times the model and layout checkers of git revision
REF (its ir/checker.py and ir/layout_checker.py loaded beside ours), so one
run gives before and after on the same machine state. For every phase of
an older revision, install it elsewhere and run this script against it:
`pip install --no-deps --no-build-isolation --target DIR .` in its
checkout, then `PYTHONPATH=DIR python bench/load_checks.py ...`.

  .venv/bin/python bench/load_checks.py --cases hclt32,hclt512 --baseline main \\
      --out bench/results/load_checks-cpu-2026-12-06.md
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

import pccompiler  # noqa: E402
from pccompiler import driver, ir  # noqa: E402
from pccompiler.ir import artifact  # noqa: E402
from pccompiler.ir.checker import check  # noqa: E402
from pccompiler.ir.layout_checker import check_layout  # noqa: E402


# perf_counter (wall) or thread_time (this thread's CPU seconds: on a
# shared machine, less sensitive to other processes; the load phase runs
# hash threads and is always wall time)
CLOCK = time.perf_counter


def _best(fn: Callable[[], object], repeats: int, clock: Callable[[], float] | None = None
          ) -> float:
    clock = clock or CLOCK
    times = []
    for _ in range(repeats):
        gc.collect()
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def _module_at(ref: str, path: str, name: str):
    """`path` of git revision `ref`, imported as module `name`."""
    source = subprocess.run(["git", "show", f"{ref}:{path}"], check=True, capture_output=True,
                            text=True).stdout
    folder = tempfile.mkdtemp(prefix="pcc-base-")
    file = os.path.join(folder, f"{name}.py")
    Path(file).write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _baseline(ref: str) -> tuple[Callable, Callable]:
    """(check, check_layout) of revision `ref`; its layout checker uses its
    own checker's helpers."""
    base = _module_at(ref, "ir/checker.py", "base_checker")
    saved = sys.modules.get("pccompiler.ir.checker")
    sys.modules["pccompiler.ir.checker"] = base
    try:
        layout = _module_at(ref, "ir/layout_checker.py", "base_layout_checker")
    finally:
        sys.modules["pccompiler.ir.checker"] = saved
    return base.check, layout.check_layout


def _first_load(path: str) -> None:
    artifact._CHECKED.clear()
    pccompiler.load(path, device="cpu", backend="torch")


def time_file(path: str, repeats: int, baseline: tuple | None) -> dict:
    art = artifact.read_pcc(path, check=False)
    model, layout, arrays = art.mapped_model, art.layout, art.arrays
    if check(model, arrays=arrays, collect=True) or check_layout(layout, model, collect=True):
        raise SystemExit(f"{path}: the checkers refuse the file")
    impl = driver.compiling_backend("torch")
    # the loader hands the layout checker the hash it computed (older
    # checkers, run with PYTHONPATH=<older package>, compute it themselves)
    hashed = {"model_hash": ir.structure_hash(model)} \
        if "model_hash" in inspect.signature(check_layout).parameters else {}
    row = {
        "groups": len(model.groups),
        "read": _best(lambda: artifact.read_pcc(path, check=False), repeats),
        "model": _best(lambda: check(model, arrays=arrays), repeats),
        "layout": _best(lambda: check_layout(layout, model, **hashed), repeats),
        "hash": _best(lambda: ir.structure_hash(model), repeats),
        "backend": _best(lambda: driver.compile_with_arrays(
            impl, model, layout, {"device": "cpu", "dtype": "float32"}, arrays), repeats),
        "load": _best(lambda: _first_load(path), repeats, time.perf_counter),
    }
    if baseline is not None:
        row["model_base"] = _best(lambda: baseline[0](model, arrays=arrays), repeats)
        row["layout_base"] = _best(lambda: baseline[1](layout, model), repeats)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="hclt32")
    ap.add_argument("--pcc", default="", help="comma list of .pcc files instead of cases")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--baseline", default="", help="git revision to time the checkers of too")
    ap.add_argument("--out", default="", help="also write the markdown table here")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="phase timer: wall seconds, or this thread's CPU seconds")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    baseline = _baseline(args.baseline) if args.baseline else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="pcc-lc-") as folder:
        files = [(Path(p).stem, p) for p in args.pcc.split(",") if p]
        for case in ([] if files else race_cases.select_cases(args.cases)):
            path = os.path.join(folder, f"{case.name}.pcc")
            pccompiler.compile(case.build(), backend="torch", device="cpu",
                               cache=False).save(path)
            files.append((case.name, path))
            gc.collect()
        for name, path in files:
            with open(path, "rb") as fh:             # warm the page cache
                while fh.read(64 << 20):
                    pass
            row = {"case": name, "mb": os.path.getsize(path) / 1e6,
                   **time_file(path, args.repeats, baseline)}
            print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in row.items()), flush=True)
            rows.append(row)
    text = _markdown(rows, args)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


def _markdown(rows: list[dict], args: argparse.Namespace) -> str:
    """The table; "checks in load" is what the loader spends on checking:
    model check + structure hash + layout check (the baseline's layout
    checker computes the hash again itself, as its loader did)."""
    ms = 1e3
    head = "| case | groups | file MB | read ms | model check ms | layout check ms | hash ms " \
           "| checks in load ms | backend ms | load ms (first) |"
    if args.baseline:
        head += f" model check @{args.baseline} ms | layout check @{args.baseline} ms " \
                f"| checks in load @{args.baseline} ms |"
    lines = [f"`{' '.join(['python'] + sys.argv)}`", "",
             f"Machine: {platform.machine()} {os.cpu_count()} CPUs "
             f"({platform.processor() or platform.platform()}), load average "
             f"{os.getloadavg()[0]:.1f} at the end; torch backend on the CPU; fastest of "
             f"{args.repeats} runs per phase, warm page cache; phases in "
             f"{'CPU (thread_time)' if args.clock == 'cpu' else 'wall'} ms, the first load "
             f"in wall ms", "",
             head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        checks = r["model"] + r["hash"] + r["layout"]
        line = (f"| {r['case']} | {r['groups']} | {r['mb']:.0f} | {r['read'] * ms:.1f} | "
                f"{r['model'] * ms:.1f} | {r['layout'] * ms:.1f} | {r['hash'] * ms:.1f} | "
                f"{checks * ms:.1f} | {r['backend'] * ms:.1f} | {r['load'] * ms:.1f} |")
        if args.baseline:
            base = r["model_base"] + r["hash"] + r["layout_base"]
            line += (f" {r['model_base'] * ms:.1f} | {r['layout_base'] * ms:.1f} | "
                     f"{base * ms:.1f} |")
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
