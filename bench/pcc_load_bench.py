"""How fast does a .pcc load, from a warm page cache?

For each case: build the race Model, compile it (torch on the CPU, or the
backend given), save it as a .pcc (container v2: parameters page-aligned in
the `params` section), read the file once to warm the page cache, then
time `pccompiler.load(path, device=...)` `--repeats` times (fastest kept)
and its phases:

  read_pcc      mmap, manifest / section table checks, model + layout
                sha256 and parse, IR checkers (the params section's sha256
                runs on a thread from here on)
  backend       engine construction: parameter packing from the mapped
                arrays (CPU: one strided numpy copy per tensor; CUDA: pinned
                chunks -> one upload per chunk -> device permute)
  verify        waiting for the params hash thread

GB/s is the file size over the whole load (what "loading at N GB/s" means
to a user); the params-only rate is printed too. The first load of a file
runs the IR checkers; later loads of the same content in one process skip
them (ir/artifact.py `_CHECKED`; the hashes are verified every time), so
the table gives the first load's total and the fastest load's phases.

  .venv/bin/python bench/pcc_load_bench.py --cases hclt512 --repeats 3
  PYTHONPATH=/tmp/pcc:bench python3 bench/pcc_load_bench.py --cases hclt512 --device cuda \\
      --backend triton
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

import pccompiler  # noqa: E402
from pccompiler.ir import artifact  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def time_load(path: str, device: str, backend: str) -> dict[str, float]:
    """Seconds of one `pccompiler.load`, split into read / backend / verify."""
    from pccompiler import driver
    phases: dict[str, float] = {}
    real_read, real_compile = artifact.read_pcc, driver.compile_with_arrays

    def read(*a, **k):
        t = time.perf_counter()
        try:
            return real_read(*a, **k)
        finally:
            phases["read_pcc"] = time.perf_counter() - t

    def build(*a, **k):
        t = time.perf_counter()
        try:
            out = real_compile(*a, **k)
            _sync(device)
            return out
        finally:
            phases["backend"] = time.perf_counter() - t
    artifact.read_pcc, driver.compile_with_arrays = read, build
    try:
        gc.collect()
        t0 = time.perf_counter()
        circuit = pccompiler.load(path, device=device, backend=backend)
        _sync(device)
        phases["total"] = time.perf_counter() - t0
    finally:
        artifact.read_pcc, driver.compile_with_arrays = real_read, real_compile
    phases["verify"] = phases["total"] - phases["read_pcc"] - phases["backend"]
    del circuit
    return phases


def _params_bytes(path: str) -> int:
    """Length of the params section, from the manifest alone (no hashing)."""
    with open(path, "rb") as fh:
        head = fh.read(16)
        manifest = json.loads(fh.read(int.from_bytes(head[8:16], "little")))
    return sum(e["length"] for e in manifest.get("sections", []) if e["name"] == "params")


def run_case(name: str, device: str, backend: str, repeats: int, folder: str,
             given: str = "") -> dict:
    path = given or os.path.join(folder, f"{name}.pcc")
    if not given:
        case = race_cases.all_cases()[name]
        t0 = time.perf_counter()
        model = case.build()
        print(f"== {name}: build {time.perf_counter() - t0:.1f} s", flush=True)
        circuit = pccompiler.compile(model, backend="torch", device="cpu", cache=False)
        t0 = time.perf_counter()
        circuit.save(path)
        print(f"   save {time.perf_counter() - t0:.1f} s", flush=True)
        del circuit, model
        gc.collect()
    size = os.path.getsize(path)
    params = _params_bytes(path)
    with open(path, "rb") as fh:                 # warm the page cache
        while fh.read(64 << 20):
            pass
    best: dict[str, float] | None = None
    first = None
    for _ in range(repeats):
        phases = time_load(path, device, backend)
        first = phases["total"] if first is None else first
        print("   load " + "  ".join(f"{k} {v:.3f} s" for k, v in phases.items()), flush=True)
        if best is None or phases["total"] < best["total"]:
            best = phases
    assert best is not None
    if not given:
        os.unlink(path)
    return {"case": name, "bytes": size, "params": params, "first": first, **best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="hclt512")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="", help="also write the markdown table here")
    ap.add_argument("--dir", default="", help="folder for the .pcc files (default: a temp folder)")
    ap.add_argument("--pcc", default="", help="time this .pcc file instead of building cases")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pcc-load-", dir=args.dir or None) as folder:
        if args.pcc:
            rows.append(run_case(Path(args.pcc).stem, args.device, args.backend, args.repeats,
                                 folder, given=args.pcc))
        for case in ([] if args.pcc else race_cases.select_cases(args.cases)):
            rows.append(run_case(case.name, args.device, args.backend, args.repeats, folder))
    lines = [f"`{' '.join(['python3'] + sys.argv)}`", "",
             f"Machine: {platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or ''} "
             f"device {args.device}, backend {args.backend}; fastest of {args.repeats} loads, "
             f"warm page cache", "",
             "First load: the IR checkers run; later loads of the same content in the process "
             "skip them (hashes still verified), the phase columns are the fastest load.", "",
             "| case | file MB | params MB | first load s | read_pcc s | backend s | verify wait s "
             "| total s | file GB/s | params GB/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['bytes'] / 1e6:.0f} | {r['params'] / 1e6:.0f} | "
                     f"{r['first']:.3f} | {r['read_pcc']:.3f} | {r['backend']:.3f} | {r['verify']:.3f} | "
                     f"{r['total']:.3f} | {r['bytes'] / r['total'] / 1e9:.2f} | "
                     f"{r['params'] / r['total'] / 1e9:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
