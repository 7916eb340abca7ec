"""Before / after CPU seconds (user, system) of the compile stages of one SDD,
from fresh processes that take turns: for a box whose load makes wall times
move 2x between identical runs (bench/logic_fx_ab.py gives the wall times).

Each process imports pccompiler from the checkout ("after") or from a folder
installed from the old code ("before", `pip install --no-deps --target`),
builds once untimed unless --cold, then --builds times: pc.from_sdd(form=
"nodes") untimed, then pc.compile(backend="triton", precision="ieee",
check=False) and engine.fast_plan, with wall, user and system seconds of

  layerize, layout  the two passes (their registered functions, wrapped)
  backend           TritonBackend.compile
  plan              engine.fast_plan: compact remap and plans

System seconds are mostly the kernel zeroing fresh pages (ir/heap.py). The
table gives the min over all builds of each side (wall / user + system
(system)), and the min of the stages' CPU sum.

    TRITON_INTERPRET=1 .venv/bin/python bench/logic_fx_cpu.py --before /tmp/before \\
        --sdd /work/logic_cache/blocks1000_v20_s0.sdd --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys

from logic_fx_ab import run_side

STAGES = ("layerize", "layout", "backend", "plan")
CHILD = """
import json, resource, time
import torch
torch.set_num_threads(1)
import pccompiler as pc
from pccompiler.backends import triton as tb
from pccompiler.passes import registry
spent = {{}}

def mark():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime, r.ru_stime

def timed(name, fn):
    def run(*a, **k):
        m0 = mark()
        try:
            return fn(*a, **k)
        finally:
            spent[name] = [b - a for a, b in zip(m0, mark())]
    return run

for name in ("layerize", "layout"):
    info = registry.get_pass(name)
    object.__setattr__(info, "fn", timed(name, info.fn))       # a frozen dataclass
tb.TritonBackend.compile = timed("backend", tb.TritonBackend.compile)

def build():
    spent.clear()
    model = pc.from_sdd({path!r}, form="nodes")
    circuit = pc.compile(model, backend="triton", device="cpu", precision="ieee", check=False)
    timed("plan", lambda: circuit.engine.fast_plan)()
    return dict(spent)

if not {cold}:
    build()
print(json.dumps([build() for _ in range({builds})]))
"""


def side_runs(args, before: bool) -> list[dict]:
    """One process's builds: stage -> [wall, user, system] seconds."""
    code = CHILD.format(path=args.sdd, cold=args.cold, builds=args.builds)
    return run_side(code, args.before if before else None, "cpu")


def table(runs: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: per side, per stage min wall / min user+system (min system), ms."""
    lines = ["| side | builds | " + " | ".join(STAGES) + " | CPU of the stages |",
             "|---|---|" + "---|" * (len(STAGES) + 1)]
    for side, builds in runs.items():
        cells = [f"{min(b[s][0] for b in builds) * 1e3:.0f} / "
                 f"{min(b[s][1] + b[s][2] for b in builds) * 1e3:.0f} "
                 f"({min(b[s][2] for b in builds) * 1e3:.0f})" for s in STAGES]
        total = min(sum(b[s][1] + b[s][2] for s in STAGES) for b in builds)
        lines.append(f"| {side} | {len(builds)} | " + " | ".join(cells) + f" | {total * 1e3:.0f} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="folder with the old pccompiler installed")
    ap.add_argument("--sdd", required=True, help="the .sdd file (its .vtree beside it)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--builds", type=int, default=1)
    ap.add_argument("--cold", action="store_true", help="no untimed build first")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    loads = []
    for _ in range(args.rounds):
        for side in runs:
            loads.append(os.getloadavg()[0])
            runs[side].extend(side_runs(args, side == "before"))
    print(f"load average (1 min) at each process start: {min(loads):.2f} .. {max(loads):.2f}; "
          f"{args.rounds} rounds x {args.builds} builds per side; min ms: wall / user + "
          f"system (system)\n")
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
