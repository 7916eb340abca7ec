"""The triton plan of the shared SDDs' node layouts, node_plan against the
walk, in one process (issue #19; bench/results/logic_plankind-cpu-2026-12-07.md).

Each circuit is built once (logic_race.ours_build); then `build_plan` of
its Layout on one decoded table runs with plan.NODE_PLAN off (the
partition-by-partition walk) and on (backends/triton/node_plan.py), taking
turns, and the table gives the min over --rounds of the mean of --reps
builds. --device meta runs the device path (the packed upload and its
views) without a GPU. --profile instead prints cProfile's top lines over
--reps whole builds (file to executable) of each circuit.

    TRITON_INTERPRET=1 .venv/bin/python bench/logic_fx_nodeplan.py --device cpu
    TRITON_INTERPRET=1 .venv/bin/python bench/logic_fx_nodeplan.py --profile --reps 200 \\
        --names sudoku_4 --sort cumulative
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SHARED = ["sudoku_4", "4-grid", "seq_fun", "road_r"]


def plan_ab(path: Path, device: str, rounds: int, reps: int) -> dict[bool, float]:
    """{NODE_PLAN: min over rounds of the mean seconds of build_plan}."""
    import logic_race
    from pccompiler import ir
    from pccompiler.backends.triton import plan
    layout = logic_race.ours_build(path, "cpu", "ieee", form="nodes")[0].engine.layout
    table = ir.tensor_table(layout)
    best = {False: float("inf"), True: float("inf")}
    saved = plan.NODE_PLAN
    try:
        for _ in range(rounds):
            for on in (False, True):
                plan.NODE_PLAN = on
                start = time.perf_counter()
                for _ in range(reps):
                    plan.build_plan(layout, device, table=table)
                best[on] = min(best[on], (time.perf_counter() - start) / reps)
    finally:
        plan.NODE_PLAN = saved
    return best


def profile(path: Path, reps: int, sort: str, lines: int) -> str:
    """cProfile's top `lines` by `sort` over `reps` builds of `path`."""
    import logic_race
    logic_race.ours_build(path, "cpu", "ieee", form="nodes")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        logic_race.ours_build(path, "cpu", "ieee", form="nodes")
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(sort).print_stats(lines)
    return out.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", default="/work/shared/data/circuits")
    ap.add_argument("--names", nargs="*", default=SHARED)
    ap.add_argument("--device", default="cpu", help="cpu, or meta for the device path")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--lines", type=int, default=40)
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        sys.exit("bench/logic_fx_nodeplan.py builds for the CPU: set TRITON_INTERPRET=1")
    import torch
    torch.set_num_threads(1)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in args.names:
        path = Path(args.circuits) / f"{name}.sdd"
        if args.profile:
            print(f"== {name}\n{profile(path, args.reps, args.sort, args.lines)}")
            continue
        best = plan_ab(path, args.device, args.rounds, args.reps)
        print(f"| {name} | {args.device} | walk {best[False] * 1e3:.3f} ms | "
              f"node_plan {best[True] * 1e3:.3f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
