"""Import + compile time of a large SDD on the CPU (issue #19 point 2:
a 1M-node SDD imports and compiles in <= 1 s).

Stages timed separately: `import` (pc.from_sdd: tokenizer, vtree, nodes,
smoothing, groups), `passes` (pccompiler's pipeline to a Layout),
`backend` (the torch engine on that Layout), and `total` (pc.compile of
the imported Model, which runs passes and backend). --profile prints the
top cProfile entries of the whole run.

    .venv/bin/python bench/logic_scale.py --blocks 1000 [--profile]
    .venv/bin/python bench/logic_scale.py --blocks 100 --import-only --repeat 5

--import-only times pc.from_sdd alone (best of --repeat runs, and its time
per SDD node); put an older checkout first on PYTHONPATH to time its
importer under the same conditions.
"""

from __future__ import annotations

import argparse
import cProfile
import platform
import pstats
import time
from pathlib import Path

import torch

import pccompiler as pc

import logic_sdds


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def run(path: Path) -> dict:
    from pccompiler import passes
    from pccompiler.backends.torch import TorchBackend

    model, t_import = timed(pc.from_sdd, path)
    result, t_passes = timed(passes.compile_model, model, backend="torch")
    _, t_backend = timed(TorchBackend().compile, result.model, result.layout,
                         {"device": "cpu", "dtype": "float32"})
    _, t_total = timed(pc.compile, model, backend="torch", device="cpu")
    return dict(import_s=t_import, passes_s=t_passes, backend_s=t_backend,
                compile_s=t_total, groups=len(model.groups))


def import_only(path: Path, repeat: int, nodes: int) -> dict:
    times = [timed(pc.from_sdd, path) for _ in range(max(repeat, 1))]
    best = min(t for _, t in times)
    return dict(importer=str(Path(pc.__file__).parent), import_s=best,
                us_per_node=best / nodes * 1e6, groups=len(times[0][0].groups))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=1000)
    ap.add_argument("--sdd", default="", help="an .sdd file instead of a generated one")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--import-only", action="store_true", help="time pc.from_sdd alone")
    ap.add_argument("--repeat", type=int, default=1, help="runs of --import-only (best is kept)")
    args = ap.parse_args(argv)
    path = Path(args.sdd) if args.sdd else logic_sdds.sdd_file(args.blocks)
    header = next(ln for ln in open(path) if ln.startswith("sdd "))
    print(f"{path.name}: {header.split()[1]} SDD nodes, {path.stat().st_size / 1e6:.1f} MB; "
          f"{platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    res = import_only(path, args.repeat, int(header.split()[1])) if args.import_only \
        else run(path)
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
