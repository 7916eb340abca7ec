"""Where compile + engine setup time and host memory go (CPU only, no kernels).

    .venv/bin/python bench/setup_profile.py [--case hclt512] [--old]

Builds a race case (bench/race_cases.py: hclt512 = HCLT 784 vars x 256
cats, latents 512, the shipped MNIST Chow-Liu tree), then times, with the
host's resident-set high-water mark of each phase (VmHWM, reset between
phases through /proc/self/clear_refs):

  passes cold      passes.compile_model into a fresh layout cache, with and
                   without the `verify` pass (ir.check)
  cache hit        passes.compile_model from that cache (no pass runs)
  triton setup     TritonEngine construction on device "cpu": plan decoding,
                   buffers, parameter packing (no kernel runs, so no GPU
                   or interpreter is needed), split into its parts
  --old            the pieces the engine used to build too: the generic
                   LayoutIndex (int64 per-parameter tensors), its EM key
                   groups and the float64 host packing, for comparison

It prints one table (seconds, peak RSS MB above the phase's start, the
buffers' own bytes) and writes it to bench/results/setup_profile.md.
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

from race_cases import all_cases  # noqa: E402

from pccompiler.passes.manager import compile_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "setup_profile.md"


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class Phase:
    """Time and peak RSS above the starting RSS of one `with` block."""

    rows: list[tuple[str, float, float, str]] = []

    def __init__(self, name: str, note: str = ""):
        self.name, self.note = name, note

    def __enter__(self) -> "Phase":
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")          # reset VmHWM to the current RSS
        except OSError:
            pass
        self.rss0 = _rss_mb("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        secs = time.perf_counter() - self.t0
        peak = _rss_mb("VmHWM") - self.rss0
        Phase.rows.append((self.name, secs, peak, self.note))
        print(f"{self.name:<34}{secs:8.2f} s {peak:9.0f} MB  {self.note}", flush=True)


def _mb(*tensors: torch.Tensor) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", default="hclt512", help="a race case name (bench/race_cases.py)")
    ap.add_argument("--device", default="cpu",
                    help="where the engine is built (cuda on a GPU machine; cpu runs no kernel)")
    ap.add_argument("--profile-warm", action="store_true",
                    help="also cProfile one cache-hit pccompiler.compile (top 15 by own time)")
    ap.add_argument("--old", action="store_true",
                    help="also time the generic LayoutIndex / float64 packing the engine "
                         "used to build")
    args = ap.parse_args(argv)
    from pccompiler.backends.triton import TritonBackend
    from pccompiler.backends.triton.engine import TritonEngine
    from pccompiler.backends.triton.plan import build_plan
    from pccompiler.backends.common.packing_upload import pack_parameters_into

    case = all_cases()[args.case]
    with Phase("build + lower (not compile)"):
        model = case.build()
    limit = TritonBackend.block_limit
    with tempfile.TemporaryDirectory() as cache:
        with Phase("passes cold, with verify"):
            compile_model(model, block_limit=limit, backend="triton")
        with Phase("passes cold, verify skipped", "cache store"):
            result = compile_model(model, block_limit=limit, backend="triton", cache=cache,
                                   verify=False)
        with Phase("cache hit (no pass)"):
            hit = compile_model(model, block_limit=limit, backend="triton", cache=cache)
        assert hit.cache_hit
    m2, layout = result.model, result.layout
    print(f"layout: {layout.num_slots:,} slots, {layout.num_sum_params:,} sum params, "
          f"{layout.num_input_params:,} input params", flush=True)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with Phase("triton plan (int32 index arrays)"):
        plan = build_plan(layout, dev)
        sync()
    del plan
    with Phase("param buffers (4 x fp32, zeroed)"):
        bufs = [torch.zeros(int(layout.num_sum_params), device=dev) for _ in range(2)] + \
               [torch.zeros(int(layout.num_input_params), device=dev) for _ in range(2)]
        sync()
    with Phase("pack parameters (fp32, device)"):
        pack_parameters_into(m2, layout, bufs[0], bufs[2])
        sync()
    del bufs
    with Phase(f"TritonEngine({dev.type}) total") as ph:
        eng = TritonEngine(m2, layout, dev)
        sync()
    held = _mb(eng.sum_params, eng.sum_param_flows, eng.input_params, eng.input_param_flows,
               eng._node_flows)
    ph_note = f"params+flows {held:.0f} MB"
    Phase.rows[-1] = Phase.rows[-1][:3] + (ph_note,)
    print("  " + ph_note)
    del eng
    if args.profile_warm:
        import cProfile
        import pstats
        import pccompiler
        with tempfile.TemporaryDirectory() as cache:
            for label in ("pccompiler.compile cold", "pccompiler.compile warm"):
                with Phase(label):
                    cc = pccompiler.compile(model, backend="triton", device=str(dev), cache=cache)
                    sync()
                del cc
            prof = cProfile.Profile()
            prof.enable()
            cc = pccompiler.compile(model, backend="triton", device=str(dev), cache=cache)
            sync()
            prof.disable()
            del cc
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    if args.old:
        import numpy as np
        from pccompiler.backends.engine import _key_groups
        from pccompiler.backends.common.layout_index import build_layout_index
        from pccompiler.backends.common.packing import pack_parameters
        with Phase("old: pack_parameters float64 + cast"):
            s, i = pack_parameters(m2, layout)
            torch.as_tensor(np.asarray(s), dtype=torch.float32)
            torch.as_tensor(np.asarray(i), dtype=torch.float32)
        del s, i
        with Phase("old: build_layout_index") as ph:
            idx = build_layout_index(layout, "cpu")
        big = [p.weight_index for li in idx.layers for p in li.sums]
        Phase.rows[-1] = Phase.rows[-1][:3] + (
            f"int64 tensors {_mb(*big, idx.sum_param_parent, idx.input_param_row):.0f} MB",)
        with Phase("old: EM key groups"):
            groups = (_key_groups(idx.sum_param_parent), _key_groups(idx.input_param_row))
        Phase.rows[-1] = Phase.rows[-1][:3] + (
            f"int64 tensors {_mb(*groups[0], *groups[1]):.0f} MB",)
        del idx, groups, big
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Setup profile: {case.name} ({case.description}), CPU",
             "", f"command: python bench/setup_profile.py {' '.join(argv or sys.argv[1:])}", "",
             "| phase | seconds | peak RSS above start, MB | note |", "|---|---:|---:|---|"]
    lines += [f"| {n} | {s:.2f} | {p:.0f} | {note} |" for n, s, p, note in Phase.rows]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
