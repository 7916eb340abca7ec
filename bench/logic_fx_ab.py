"""Before / after stage tables of `bench/logic_fx.py` (ours_build, stage by
stage) from processes that take turns, for a noisy shared machine.

"before" imports pccompiler from a folder installed from the old code
(`pip install --no-deps --target /tmp/before .` of main), "after" from this
checkout; each round starts one process per side (before first), which
builds every shared SDD once untimed and then --builds times. The tables
give the median and the min over all builds of all rounds, per stage. The
processes run from a neutral folder, so the checkout's `pccompiler/` folder
cannot shadow the installed "before" copy.

    TRITON_INTERPRET=1 .venv/bin/python bench/logic_fx_ab.py --before /tmp/before \\
        --circuits ../shared/data/circuits --rounds 4 --builds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CHILD = """
import json, sys
sys.path.insert(0, {bench!r})
from pathlib import Path
import torch
import logic_fx
torch.set_num_threads(1)
out = {{}}
for name in {names!r}:
    path = Path({circuits!r}) / (name + ".sdd")
    logic_fx.ours_stages(path, "cpu")
    out[name] = [logic_fx.ours_stages(path, "cpu") for _ in range({builds})]
print(json.dumps(out))
"""


def run_side(code: str, before: str | None, tag: str):
    """The JSON that the child `code` prints on its last line, run in a fresh
    interpreter importing pccompiler from the folder `before` (the old code,
    installed there) or, with None, from this checkout. It runs from a
    neutral folder, so the checkout's `pccompiler/` cannot shadow `before`."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("PYTHONPATH", None)
    if before is not None:
        env["PYTHONPATH"] = before
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd="/")
    if res.returncode:
        side = "before" if before is not None else "after"
        raise SystemExit(f"[{tag}] {side} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def side_runs(args, before: bool) -> dict:
    """One process's stage seconds per circuit (a list of builds each)."""
    code = CHILD.format(bench=str(BENCH), names=args.names, circuits=args.circuits,
                        builds=args.builds)
    return run_side(code, args.before if before else None, "ab")


def take_turns(rounds: int, one_side) -> tuple[dict, list]:
    """({"before": {key: [values]}, "after": ...}, the 1-minute load at each
    process start): `rounds` rounds of one_side(before=True) then
    one_side(before=False), each a fresh process's {key: [values]}."""
    runs: dict[str, dict[str, list]] = {"before": {}, "after": {}}
    loads = []
    for _ in range(rounds):
        for side in ("before", "after"):
            loads.append(os.getloadavg()[0])
            for key, values in one_side(side == "before").items():
                runs[side].setdefault(key, []).extend(values)
    return runs, loads


def main(argv=None) -> int:
    import logic_fx
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="folder with the old pccompiler installed")
    ap.add_argument("--circuits", required=True, help="folder of the shared SDDs")
    ap.add_argument("--names", nargs="*", default=logic_fx.SHARED)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--builds", type=int, default=5)
    args = ap.parse_args(argv)
    runs, loads = take_turns(args.rounds, lambda before: side_runs(args, before))
    print(f"load average (1 min) at each process start: {min(loads):.2f} .. {max(loads):.2f}; "
          f"{args.rounds} rounds x {args.builds} builds per side")
    rows = logic_fx.ROWS
    for label, pick in (("median", statistics.median), ("min", min)):
        print(f"\n{label} ms\n\n| circuit | side | " + " | ".join(rows) + " |")
        print("|---" * (len(rows) + 2) + "|")
        for name in args.names:
            for side in ("before", "after"):
                builds = runs[side][name]
                print(f"| {name} | {side} | " + " | ".join(
                    f"{pick(b.get(r, 0.0) for b in builds) * 1e3:.2f}" for r in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())
