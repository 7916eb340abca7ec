"""Where the import + default compile of a large SDD spends wall, user and
system time and page faults, stage by stage (issue #19 point 2; see
bench/results/logic_import-cpu-2026-12-07.md).

One pc.from_sdd(form="nodes") + pc.compile(model, backend="torch") per
file, the first of its size in a fresh process (after a warm-up on a small
shared SDD), as a user runs it. Stages: parse (the .vtree and .sdd text
readers), nodes (the node arrays and the Model), import (both, and the
rest of from_sdd), verify, layerize and layout (the passes), compile (all
of pc.compile), total. System time on a VM is mostly the kernel zeroing
fresh pages on first touch (ir/heap.py), so faults and system seconds say
what memory costs.

    .venv/bin/python bench/logic_import_stages.py bench/data/logic_cache/blocks1000_v20_s0.sdd
    PYTHONPATH=/tmp/before .venv/bin/python bench/logic_import_stages.py FILE   # an older package

Works with older packages: it wraps the readers and the builder where
frontend/sdd.py calls them, and each pass where the pass manager finds it.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

import pccompiler as pc
from pccompiler.data.locate import SHARED_DATA_DIR
from pccompiler.frontend import sdd
from pccompiler.passes import manager

ROWS = ("parse", "nodes", "import", "verify", "layerize", "layout", "compile", "total")


def usage() -> np.ndarray:
    """[wall s, user s, system s, minor faults] of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([time.perf_counter(), r.ru_utime, r.ru_stime, r.ru_minflt])


class Stages:
    """Accumulates usage per stage; `wrap` counts nested calls once."""

    def __init__(self):
        self.spent: dict[str, np.ndarray] = {}
        self.depth = 0

    def add(self, name: str, delta: np.ndarray) -> None:
        self.spent[name] = self.spent.get(name, 0) + delta

    def wrap(self, name: str, fn):
        def run(*args, **kwargs):
            self.depth += 1
            start = usage()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if not self.depth:
                    self.add(name, usage() - start)
        return run


def instrument(stages: Stages) -> None:
    """Wraps the readers, the node builder and every pass the manager runs."""
    for name in ("read_vtree", "read_records"):
        setattr(sdd, name, stages.wrap("parse", getattr(sdd, name)))
    sdd.build_nodes = stages.wrap("nodes", sdd.build_nodes)
    find = manager.get_pass

    class Timed:
        def __init__(self, info):
            self.info = info

        def __getattr__(self, key):
            value = getattr(self.info, key)
            return stages.wrap(self.info.name, value) if key == "fn" else value
    manager.get_pass = lambda name: Timed(find(name))


def one(path, stages: Stages) -> dict:
    """The usage per stage of one import + default compile of `path`."""
    stages.spent = {}
    start = usage()
    model = pc.from_sdd(path, form="nodes")
    mid = usage()
    pc.compile(model, backend="torch")
    end = usage()
    stages.add("import", mid - start)
    stages.add("compile", end - mid)
    stages.add("total", end - start)
    return dict(stages.spent)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdd", nargs="+", help=".sdd files (their .vtree beside them)")
    ap.add_argument("--warm", default=str(SHARED_DATA_DIR / "circuits" / "road_r.sdd"),
                    help="a small SDD run first (imports, torch's lazy setup)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    stages = Stages()
    instrument(stages)
    one(args.warm, stages)
    for path in args.sdd:
        spent = one(path, stages)
        print(f"{os.path.basename(path)}, load {os.getloadavg()[0]:.2f}")
        print("| stage | wall ms | user ms | sys ms | minor faults |\n|---|---|---|---|---|")
        for row in ROWS:
            if row in spent:
                wall, user, system, faults = spent[row]
                print(f"| {row} | {wall * 1e3:.0f} | {user * 1e3:.0f} | {system * 1e3:.0f} "
                      f"| {int(faults):,} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {peak / 2 ** 20:.2f} GB")


if __name__ == "__main__":
    main()
