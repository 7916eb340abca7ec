"""Before / after CPU time of `pc.from_sdd(form="nodes")` alone (the parse
and nodes stages of `bench/logic_fx.py`), from fresh processes that take
turns, for a noisy shared machine.

Wall times of sub-millisecond imports on a busy 2-core box move 10-30%
between processes of the same code (`bench/logic_fx_ab.py` tables); the
process's CPU time (time.process_time: user + system) moves far less, so
small changes of the import show here. "before" imports pccompiler from a
folder installed from the old code (`pip install --no-deps --target
/tmp/before .` of main), "after" from this checkout; each round starts one
process per side (before first), which imports each SDD --warm times
untimed, then --builds times timed. Prints the min and median per side.

    .venv/bin/python bench/logic_fx_import_ab.py --before /tmp/before \\
        --sdd ../shared/data/circuits/sudoku_4.sdd --rounds 4 --builds 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from logic_fx_ab import run_side, take_turns      # (bench/ is this script's folder)

CHILD = """
import json, time
import pccompiler as pc
out = {{}}
for path in {paths!r}:
    for _ in range({warm}):
        pc.from_sdd(path, form="nodes")
    spent = []
    for _ in range({builds}):
        t = time.process_time()
        model = pc.from_sdd(path, form="nodes")
        spent.append(time.process_time() - t)
        del model
    out[path] = spent
print(json.dumps(out))
"""


def side_run(args, before: bool) -> dict:
    """{path: [CPU seconds of each timed import]} of one fresh process,
    importing pccompiler from args.before (before) or args.after, by
    default this checkout (logic_fx_ab.run_side)."""
    code = CHILD.format(paths=[os.path.abspath(p) for p in args.sdd], warm=args.warm,
                        builds=args.builds)
    return run_side(code, args.before if before else args.after, "import_ab")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="folder with the old pccompiler installed")
    ap.add_argument("--after", default=None,
                    help="folder with the new pccompiler installed (default: this checkout). "
                         "The same code imported from an installed folder and from the "
                         "checkout differed by 0.3 ms on seq_fun (3.68 against 3.99 ms, "
                         "2026-12-07): install both sides to compare code alone")
    ap.add_argument("--sdd", nargs="+", required=True, help=".sdd files (vtree beside each)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--builds", type=int, default=20)
    ap.add_argument("--warm", type=int, default=1, help="untimed imports first, per file")
    args = ap.parse_args(argv)
    runs, loads = take_turns(args.rounds, lambda before: side_run(args, before))
    print(f"load average (1 min) at each process start: {min(loads):.2f} .. {max(loads):.2f}; "
          f"{args.rounds} rounds x {args.builds} imports per side\n")
    print("| file (CPU ms) | before min | after min | before median | after median |")
    print("|---|---:|---:|---:|---:|")
    for path in runs["before"]:
        b, a = runs["before"][path], runs["after"][os.path.abspath(path)]
        print(f"| {os.path.basename(path)} | {min(b) * 1e3:.3f} | {min(a) * 1e3:.3f} | "
              f"{statistics.median(b) * 1e3:.3f} | {statistics.median(a) * 1e3:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
