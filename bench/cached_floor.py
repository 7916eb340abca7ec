"""The floor of a cached compile of a protobuf Model, next to its cold compile.

A layout-cache hit still has to (1) hash the Model's structure (the cache
key), (2) copy every parameter tensor out of protobuf (upb hands `raw_data`
out only as a fresh `bytes`) and (3) copy it into the engine's fresh
parameter buffers. This script times those three steps alone, with no
compiler code around them, and sets their sum against a cold compile and a
cached one of the same Model: if the floor is already over 10% of cold, no
change to the cached path's own code reaches issue #16's target on this
machine for a `pcir.Model` input (a builder group or a loaded .pcc skip
step 2: their arrays travel beside the Model).

  .venv/bin/python bench/cached_floor.py --cases hclt32,hmm1024,bsp010
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

import pccompiler  # noqa: E402
from pccompiler import ir  # noqa: E402
from pccompiler.ir import pcir  # noqa: E402


def _param_tensors(model: pcir.Model) -> list[pcir.Tensor]:
    """The tensors packing reads: every sum's weights and input's params
    (tied copies name the same tensor once)."""
    names = {g.input.params if g.kind == pcir.INPUT else g.sum.weights
             for g in model.groups if g.kind != pcir.PRODUCT} - {""}
    return [t for t in model.tensors if t.name in names]


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def floor_steps(model: pcir.Model, repeats: int) -> dict[str, float]:
    """Seconds (fastest of `repeats`) of each unavoidable step of a hit."""
    tensors = _param_tensors(model)
    nbytes = sum(len(t.raw_data) for t in tensors)

    def read() -> None:
        for t in tensors:
            t.raw_data          # noqa: B018  (the copy out of upb is the point)

    def read_and_copy() -> None:
        flat = torch.empty(nbytes, dtype=torch.uint8).numpy()
        offset = 0
        for t in tensors:
            data = np.frombuffer(t.raw_data, dtype=np.uint8)
            flat[offset:offset + data.size] = data
            offset += data.size

    return {"bytes": float(nbytes),
            "hash": _best(lambda: ir.structure_hash(model), repeats),
            "read": _best(read, repeats),
            "read+copy": _best(read_and_copy, repeats)}


def compile_times(model: pcir.Model, backend: str, repeats: int) -> tuple[float, float]:
    """(cold, fastest cached) seconds of pccompiler.compile in a fresh cache."""
    with tempfile.TemporaryDirectory(prefix="pcc-floor-") as folder:
        gc.collect()
        start = time.perf_counter()
        pccompiler.compile(model, backend=backend, device="cpu", cache=folder)
        cold = time.perf_counter() - start
        cached = _best(lambda: pccompiler.compile(model, backend=backend, device="cpu",
                                                  cache=folder), repeats)
    return cold, cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="hclt32,hmm1024,bsp010")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pcc-floor-warm-") as folder:     # one-time costs
        pccompiler.compile(race_cases.quick_case().build(), backend=args.backend,
                           device="cpu", cache=folder)
    print(f"`{' '.join(['python3'] + sys.argv)}`  load {os.getloadavg()[0]:.2f}\n")
    print("| case | param MB | hash s | upb read s | read + copy s | floor s | cold s | "
          "cached s | floor / cold | cached / cold |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in race_cases.select_cases(args.cases):
        model = case.build()
        steps = floor_steps(model, args.repeats)
        cold, cached = compile_times(model, args.backend, args.repeats)
        floor = steps["hash"] + steps["read+copy"]
        print(f"| {case.name} | {steps['bytes'] / 1e6:.1f} | {steps['hash']:.4f} | "
              f"{steps['read']:.4f} | {steps['read+copy']:.4f} | {floor:.4f} | {cold:.3f} | "
              f"{cached:.4f} | {100 * floor / cold:.1f}% | {100 * cached / cold:.1f}% |",
              flush=True)
        del model
        gc.collect()
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
