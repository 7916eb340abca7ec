"""How fast can a cached compile move a Model's parameter bytes at best?

A cached compile skips the passes; what is left is mostly reading every
parameter tensor's bytes out of the protobuf Model (upb hands a bytes field
out only as a fresh copy) and getting them onto the device. This times the
pieces of that on their own, per case, next to the real cold and cached
compile:

  read            `t.raw_data` for every parameter tensor (the upb copy)
  read+pin        the same, each copied into a ring of two 32 MB pinned
                  chunks (memoryview slice assignment, what packing does)
  read+pin+h2d    the same plus one non_blocking upload per full chunk
  h2d floor       one upload of all the bytes from one pinned buffer

Run on a GPU machine from the repository root:
  python3 bench/param_read_floor.py --cases hclt128,hclt512,bsp010
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

import pccompiler  # noqa: E402
from pccompiler.ir import pcir  # noqa: E402
from pccompiler.ir.external_arrays import param_tensor_names  # noqa: E402

CHUNK = 32 << 20


def param_tensors(model: pcir.Model) -> list[pcir.Tensor]:
    names = param_tensor_names(model)
    return [t for t in model.tensors if t.name in names]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="hclt128,hclt512")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    chunks = [torch.empty(CHUNK, dtype=torch.uint8, pin_memory=True) for _ in range(2)]
    views = [memoryview(c.numpy()) for c in chunks]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch.cuda.get_device_name()}")
    print("| case | MB | tensors | cold s | cached s | read s | read+pin s | read+pin+h2d s "
          "| h2d floor s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.cases.split(","):
        model = race_cases.all_cases()[name].build()
        tensors = param_tensors(model)
        total = sum(len(t.raw_data) for t in tensors)
        dev = torch.empty(total + CHUNK, dtype=torch.uint8, device="cuda")

        def read():
            for t in tensors:
                r = t.raw_data
                del r

        def read_pin(upload: bool):
            def go():
                turn, fill, base = 0, 0, 0
                events = [None, None]
                for t in tensors:
                    r = t.raw_data
                    n, pos = len(r), 0
                    mv = memoryview(r)
                    while pos < n:
                        if fill == 0 and events[turn] is not None:
                            events[turn].synchronize()
                        take = min(n - pos, CHUNK - fill)
                        views[turn][fill:fill + take] = mv[pos:pos + take]
                        fill, pos = fill + take, pos + take
                        if fill == CHUNK:
                            if upload:
                                dev[base:base + fill].copy_(chunks[turn], non_blocking=True)
                                ev = torch.cuda.Event()
                                ev.record()
                                events[turn] = ev
                            base += fill
                            turn, fill = 1 - turn, 0
                    del mv, r
                if upload and fill:
                    dev[base:base + fill].copy_(chunks[turn][:fill], non_blocking=True)
            return go

        big = torch.empty(total, dtype=torch.uint8, pin_memory=True)

        def h2d():
            dev[:total].copy_(big, non_blocking=True)

        t_read = best_of(read, args.repeats)
        t_pin = best_of(read_pin(False), args.repeats)
        t_up = best_of(read_pin(True), args.repeats)
        t_h2d = best_of(h2d, args.repeats)
        del big, dev
        cold = cached = float("inf")
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                t0 = time.perf_counter()
                c = pccompiler.compile(model, backend="triton", device="cuda", cache=folder)
                torch.cuda.synchronize()
                cold = min(cold, time.perf_counter() - t0)
                c = None
                gc.collect()
                t0 = time.perf_counter()
                c = pccompiler.compile(model, backend="triton", device="cuda", cache=folder)
                torch.cuda.synchronize()
                cached = min(cached, time.perf_counter() - t0)
                c = None  # noqa: F841
                gc.collect()
                torch.cuda.empty_cache()
        print(f"| {name} | {total / 2**20:.0f} | {len(tensors)} | {cold:.3f} | {cached:.4f} "
              f"| {t_read:.4f} | {t_pin:.4f} | {t_up:.4f} | {t_h2d:.4f} |", flush=True)


if __name__ == "__main__":
    main()
