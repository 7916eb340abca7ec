"""Where does a cached compile spend its time, next to a cold one?

For each case: build the Model, then `pccompiler.compile(model, backend,
device, cache=<fresh folder>)` twice with the same Model object (cold:
passes run and the layout cache entry is written; cached: a hit) and print
wall seconds per phase. Phases are timed by wrapping the functions that do
the work (nested phases are indented; a parent's time includes its
children's):

  check           Backend.check (driver)
  cache key       LayoutCache.key > structure_hash (+ a parameter hash
                  when a pass depends on parameter values)
  cache load      LayoutCache.load > decode_entry (checksum, parse,
                  model' rebuild)
  passes          run_pipeline (cold only)
  cache store     LayoutCache.store > encode_entry (cold only)
  backend         Backend.compile > engine construction: plan (triton),
                  parameter packing (load_parameters > pack_parameters_into:
                  "batched (device)" > "packing plan" on a GPU, "per
                  tensor" on the CPU; backends/common/packing_upload.py), device
                  copies

Run from the repository root:
  .venv/bin/python bench/cached_compile_profile.py --cases hclt128,hclt512
  TRITON_INTERPRET=1 .venv/bin/python bench/cached_compile_profile.py --backends torch,triton
--repeats N (default 3) runs N rounds (a fresh cache folder each) and keeps
the fastest cold and the fastest cached compile; --profile N prints
cProfile's top N entries (by cumulative time) of the fastest cached one.
It also prints every round's seconds and the load average (spread).
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import race_cases  # noqa: E402

import pccompiler  # noqa: E402


class Timers:
    """Wraps (owner, attribute) callables; accumulates seconds per label."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.order: list[tuple[str, int]] = []
        self._depth = 0
        self._patched: list[tuple[object, str, object]] = []

    def wrap(self, owner, attr: str, label: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            return
        timers = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if label not in timers.seconds:
                timers.seconds[label] = 0.0
                timers.calls[label] = 0
                timers.order.append((label, timers._depth))
            timers._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timers._depth -= 1
                timers.seconds[label] += time.perf_counter() - start
                timers.calls[label] += 1

        if isinstance(owner, type) and isinstance(owner.__dict__.get(attr), staticmethod):
            timed = staticmethod(timed)
        self._patched.append((owner, attr, owner.__dict__[attr] if isinstance(owner, type)
                              else fn))
        setattr(owner, attr, timed)

    def reset(self) -> None:
        self.seconds, self.calls, self.order = {}, {}, []

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._patched):
            setattr(owner, attr, fn)
        self._patched = []

    def lines(self) -> list[str]:
        return [f"    {'  ' * depth}{label:<{34 - 2 * depth}}{self.seconds[label]:8.4f} s"
                f"  ({self.calls[label]}x)" for label, depth in self.order]


def install(timers: Timers, backend: str) -> None:
    from pccompiler import ir
    from pccompiler.backends import engine, interface
    from pccompiler.backends.common import packing_upload as cpacking
    from pccompiler.passes import cache, manager
    timers.wrap(interface.Backend, "check", "check")
    timers.wrap(cache.LayoutCache, "key", "cache key")
    timers.wrap(ir, "structure_hash", "structure_hash")
    timers.wrap(cache, "_param_hash", "parameter hash")
    timers.wrap(cache.LayoutCache, "load", "cache load")
    timers.wrap(cache, "decode_entry", "decode_entry")
    timers.wrap(manager, "run_pipeline", "passes")
    timers.wrap(cache.LayoutCache, "store", "cache store")
    timers.wrap(cache, "encode_entry", "encode_entry")
    if backend == "torch":
        from pccompiler.backends import torch as tb
        timers.wrap(tb.TorchBackend, "compile", "backend compile")
    else:
        from pccompiler.backends import triton as trb
        from pccompiler.backends.triton import engine as tre
        timers.wrap(trb.TritonBackend, "compile", "backend compile")
        timers.wrap(tre, "build_plan", "plan")
    timers.wrap(engine.Engine, "__init__", "engine init")
    timers.wrap(engine.Engine, "load_parameters", "load_parameters")
    timers.wrap(cpacking, "pack_parameters_into", "pack_parameters_into")
    timers.wrap(cpacking, "_pack_batched", "batched (device)")
    timers.wrap(cpacking, "_plan_batched", "packing plan")
    timers.wrap(cpacking, "_pack_jobs", "per tensor")
    timers.wrap(cpacking, "_jobs", "owners (jobs)")
    timers.wrap(cpacking._ChunkRing, "__init__", "pinned ring")
    timers.wrap(cpacking._ChunkRing, "write", "stage bytes")
    timers.wrap(cpacking._ChunkRing, "flush", "upload chunk")
    timers.wrap(cpacking, "_zero_gaps", "zero gaps")
    if backend != "torch":
        timers.wrap(tre.TritonEngine, "_init_node_flows", "node-flow rows")
    try:        # CPU targets (absent before 2026-12-06: the script also times older trees)
        from pccompiler.backends.common import prefault
        timers.wrap(prefault.Prefault, "__exit__", "prefault helper join")
    except ImportError:
        pass


DEVICE = "cpu"


def compile_once(model, backend: str, cache: str, timers: Timers, profile: int = 0):
    timers.reset()
    gc.collect()
    prof = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if prof:
        prof.enable()
    circuit = pccompiler.compile(model, backend=backend, device=DEVICE, cache=cache)
    if DEVICE.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
    if prof:
        prof.disable()
    total = time.perf_counter() - start
    return circuit, total, timers.lines(), prof


def run_case(name: str, backend: str, profile: int, repeats: int) -> tuple[float, float]:
    """(cold, cached) seconds of `name`: the fastest of `repeats` rounds, each
    a cold compile into a fresh cache folder then a cached one; the phases
    printed are those of the fastest round."""
    case = race_cases.all_cases()[name]
    t0 = time.perf_counter()
    model = case.build()
    print(f"== {name} ({case.description}), backend {backend}: build {time.perf_counter() - t0:.1f} s")
    timers = Timers()
    install(timers, backend)
    best: dict[str, tuple[float, list[str]]] = {}
    every: dict[str, list[float]] = {"cold": [], "cached": []}
    prof = None
    try:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="pcc-cached-profile-") as folder:
                circuit, cold, lines, _ = compile_once(model, backend, folder, timers)
                every["cold"].append(cold)
                if "cold" not in best or cold < best["cold"][0]:
                    best["cold"] = (cold, lines)
                circuit = None   # noqa: F841 (free the first engine before the second)
                gc.collect()
                circuit, warm, lines, p = compile_once(model, backend, folder, timers, profile)
                every["cached"].append(warm)
                if "cached" not in best or warm < best["cached"][0]:
                    best["cached"], prof = (warm, lines), p
                circuit = None   # noqa: F841
                gc.collect()
    finally:
        timers.restore()
    cold, warm = best["cold"][0], best["cached"][0]
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; every round (s): "
          + "; ".join(f"{k} {' '.join(f'{x:.3f}' for x in v)}" for k, v in every.items()))
    print(f"  cold compile   {cold:8.3f} s")
    print("\n".join(best["cold"][1]))
    print(f"  cached compile {warm:8.3f} s  = {100 * warm / cold:.0f}% of cold")
    print("\n".join(best["cached"][1]))
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(profile)
    return cold, warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="hclt128,hclt512")
    ap.add_argument("--backends", default="torch",
                    help="comma list of torch, triton (triton needs TRITON_INTERPRET=1 on a CPU)")
    ap.add_argument("--profile", type=int, default=0, help="cProfile top N of the cached compile")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds of (cold, cached); the fastest of each is reported")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    backends = [b for b in args.backends.split(",") if b]
    if "triton" in backends:
        try:
            import triton  # noqa: F401
            if os.environ.get("TRITON_INTERPRET") != "1" and not DEVICE.startswith("cuda"):
                print("note: triton on the CPU needs TRITON_INTERPRET=1; skipping it")
                backends.remove("triton")
        except ImportError:
            print("note: triton not importable; skipping it")
            backends.remove("triton")
    rows = []
    for name in [c for c in args.cases.split(",") if c]:
        for backend in backends:
            cold, warm = run_case(name, backend, args.profile, args.repeats)
            rows.append((name, backend, cold, warm))
            gc.collect()
    print("\n| case | backend | cold s | cached s | cached / cold |")
    print("|---|---|---:|---:|---:|")
    for name, backend, cold, warm in rows:
        print(f"| {name} | {backend} | {cold:.3f} | {warm:.3f} | {100 * warm / cold:.0f}% |")


if __name__ == "__main__":
    main()
