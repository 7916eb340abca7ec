"""File -> executable time of SDDs on the CPU, group form against node form
(and KLay where klaycircuits is installed) in the same run (issue #19
point 2: a 1M-node SDD imports and compiles in <= 1 s).

Stages timed separately for each circuit and form:
  import    pc.from_sdd(path, form=...) (tokenizer, vtree, nodes, smoothing)
  passes    passes.compile_model (groups: the default pipeline; nodes:
            layerize,layout, without the backward partitions the torch
            backend does not read, as pc.compile for torch), verify=False as
            pc.compile(model, check=False):
            from_sdd's Model passes ir.check by construction (the importer
            checks the file; tests/logic/test_nodes.py runs ir.check on its
            output), so re-checking it is skipped; --verify runs the `verify`
            pass too (a Model read from a .pcir file is always checked)
  backend   TorchBackend().compile on that Layout (float32, CPU)
  forward   the first log WMC of a [8, V] batch of literal weights
  total     the sum: file to the first answer
KLay (klaycircuits): Circuit.add_sdd_from_file + remove_unused_nodes
(`import`), to_torch_module (`passes`: its layerization), the first
vmapped forward (`forward`).

    .venv/bin/python bench/logic_scale.py --shared --blocks 100,300 --out t.md
    .venv/bin/python bench/logic_scale.py --blocks 1000 --forms nodes --profile
    .venv/bin/python bench/logic_scale.py --blocks 100 --import-only --repeat 5

Circuits: --shared adds the four shared SDDs (../shared/data/circuits);
--blocks the random block 3-CNF SDDs of bench/logic_sdds.py (cached in
bench/data/logic_cache/, made with PySDD when missing); --sdd a file.
Each circuit and form runs --repeat times (the systems take turns, so a
swing of the machine's load hits all of them) and the run of least total is
kept; before the first circuit every form runs once untimed (imports,
torch's lazy setup). --import-only times pc.from_sdd alone (best of
--repeat runs, per SDD node).
--profile prints the top cProfile entries of each node-form run.
--stages prints, per circuit, the node form's finer stages (best of
--repeat runs each): parse (the .vtree and .sdd text readers), nodes (the
node arrays and the Model), each pass (the PassReport's seconds), backend,
index (the torch engine's LayoutIndex, decoded on first use) and the
first forward without the index.
--compile times file -> circuit as a user gets it by default:
pc.from_sdd(form="nodes") then pc.compile(model, backend="torch"), which
runs the `verify` pass (the checker) on the Model; best of --repeat runs
by the sum, with the passes' seconds from the compile report, and the
system seconds and minor page faults of its import and of its compile.
--digests prints what a change must leave alone: sha256 (16 hex) of the
node-form Model bytes, of the Layout of that default compile and of the
float32 log WMC of 8 rows, and the exact model count of circuits of at
most 600 variables.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import resource
import time
from pathlib import Path

import numpy as np
import torch

import pccompiler as pc
from pccompiler.data.locate import SHARED_DATA_DIR

import logic_sdds

SHARED = ["sudoku_4", "4-grid", "seq_fun", "road_r"]
STAGES = ("import", "passes", "backend", "forward")


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def sdd_nodes(path: Path) -> int:
    with open(path) as f:
        return int(next(ln for ln in f if ln.startswith("sdd ")).split()[1])


def as_pc_compile() -> dict:
    """compile_model's keywords for torch as pc.compile gives them: no
    backward partitions (the torch engine does not read them); none on an
    older package without the option (a before/after run on PYTHONPATH)."""
    import inspect

    from pccompiler import passes
    from pccompiler.backends.torch import TorchBackend
    if "backward" not in inspect.signature(passes.compile_model).parameters:
        return {}
    return {"backward": TorchBackend.reads_backward_partitions}


def run_form(path: Path, form: str, weights: torch.Tensor, verify: bool = False) -> dict:
    """Seconds per stage of one form, and the circuit's size and answer."""
    from pccompiler import passes
    from pccompiler.backends.torch import TorchBackend
    from pccompiler.logic import wmc

    model, t_import = timed(pc.from_sdd, path, form=form)
    result, t_passes = timed(passes.compile_model, model, backend="torch", verify=verify,
                             **as_pc_compile())
    circuit, t_backend = timed(TorchBackend().compile, result.model, result.layout,
                               {"device": "cpu", "dtype": "float32"})
    with torch.no_grad():
        out, t_fwd = timed(wmc, circuit, weights)
    counts = pc.ir.edge_counts(model)
    return dict(import_=t_import, passes=t_passes, backend=t_backend, forward=t_fwd,
                nodes=counts["nodes"], edges=counts["edges"], groups=len(model.groups),
                layers=len(result.layout.layers), answer=out.numpy())


def run_klay(path: Path, weights: torch.Tensor) -> dict | None:
    try:
        import klay
    except ImportError:
        return None
    t = time.perf_counter()
    c = klay.Circuit()
    c.add_sdd_from_file(str(path), [], [])
    c.remove_unused_nodes()
    t_import = time.perf_counter() - t
    module, t_layers = timed(c.to_torch_module, semiring="log")
    f = torch.vmap(module)
    w = weights.double()
    with torch.no_grad():
        out, t_fwd = timed(f, torch.log(w), torch.log1p(-w))
    return dict(import_=t_import, passes=t_layers, backend=0.0, forward=t_fwd,
                nodes=c.nb_nodes(), edges=0, groups=0, layers=0,
                answer=out.reshape(-1).float().numpy())


FINE = ("parse", "nodes", "layerize", "layout", "backend", "index", "forward")


def fine_stages(path: Path, weights: torch.Tensor) -> dict:
    """Seconds of the node form's finer stages in one run (see --stages):
    the importer's readers and builder are timed by wrapping them where
    sdd.py calls them."""
    from pccompiler import passes
    from pccompiler.backends.torch import TorchBackend
    from pccompiler.frontend import sdd
    from pccompiler.logic import wmc

    spent = {"parse": 0.0, "depth": 0}
    originals = {name: getattr(sdd, name) for name in ("read_vtree", "read_records")}

    def wrap(fn):
        def run(*a, **k):                   # read_vtree calls read_records: count once
            spent["depth"] += 1
            try:
                out, t = timed(fn, *a, **k)
            finally:
                spent["depth"] -= 1
            if not spent["depth"]:
                spent["parse"] += t
            return out
        return run

    for name, fn in originals.items():
        setattr(sdd, name, wrap(fn))
    try:
        model, t_import = timed(pc.from_sdd, path, form="nodes")
    finally:
        for name, fn in originals.items():
            setattr(sdd, name, fn)
    result, _ = timed(passes.compile_model, model, backend="torch", verify=False,
                      **as_pc_compile())
    seconds = {r.name: r.seconds for r in result.report.records}
    circuit, t_backend = timed(TorchBackend().compile, result.model, result.layout,
                               {"device": "cpu", "dtype": "float32"})
    _, t_index = timed(lambda: circuit.engine.index)
    with torch.no_grad():
        _, t_fwd = timed(wmc, circuit, weights)
    return dict(parse=spent["parse"], nodes=t_import - spent["parse"],
                layerize=seconds.get("layerize", 0.0), layout=seconds.get("layout", 0.0),
                backend=t_backend, index=t_index, forward=t_fwd)


def stage_table(paths: list[Path], repeat: int) -> list[str]:
    """The --stages table: best of `repeat` runs per stage, in ms."""
    lines = ["| circuit | " + " | ".join(f"{s} ms" for s in FINE) + " | sum ms |",
             "|---" * (len(FINE) + 2) + "|"]
    for path in paths:
        nv = len(pc.from_sdd(path, form="nodes").variables)
        weights = torch.from_numpy(np.random.default_rng(0).uniform(
            0.05, 0.95, size=(8, nv)).astype(np.float32))
        fine_stages(path, weights)                       # warm
        runs = [fine_stages(path, weights) for _ in range(max(repeat, 1))]
        best = {s: min(r[s] for r in runs) for s in FINE}
        lines.append(f"| {path.name} | " + " | ".join(f"{best[s] * 1e3:.1f}" for s in FINE)
                     + f" | {sum(best.values()) * 1e3:.1f} |")
        print(lines[-1], flush=True)
    return lines


COMPILE = ("import", "verify", "layerize", "layout", "rest")


RUSAGE = ("import sys s", "import faults", "compile sys s", "compile faults")


def rusage() -> tuple[float, int]:
    """(system CPU seconds, minor page faults) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime, r.ru_minflt


def default_compile(path: Path) -> dict:
    """Seconds of pc.from_sdd(form="nodes") + pc.compile(model, backend=
    "torch") with its defaults (check on): import, the passes, and the rest
    of pc.compile (backend, cache look-up, bookkeeping); under "sys" the
    system seconds and minor page faults of the import and of the compile
    (the kernel's first touch of fresh memory, see ir/heap.py)."""
    r0 = rusage()
    model, t_import = timed(pc.from_sdd, path, form="nodes")
    r1 = rusage()
    circuit, t_compile = timed(pc.compile, model, backend="torch")
    r2 = rusage()
    seconds = {r.name: r.seconds for r in circuit.compile_report.records}
    out = {"import": t_import, **{p: seconds.get(p, 0.0) for p in COMPILE[1:4]}}
    out["rest"] = t_compile - sum(out[p] for p in COMPILE[1:4])
    out["sys"] = (r1[0] - r0[0], r1[1] - r0[1], r2[0] - r1[0], r2[1] - r1[1])
    return out


def compile_table(paths: list[Path], repeat: int) -> list[str]:
    """The --compile table: the run of least total of `repeat`, in ms, and
    SDD nodes per second of that total."""
    lines = ["| circuit | SDD nodes | " + " | ".join(f"{s} ms" for s in COMPILE)
             + " | total ms | SDD nodes / s | " + " | ".join(RUSAGE) + " |",
             "|---" * (len(COMPILE) + 4 + len(RUSAGE)) + "|"]
    if paths:                          # warm (imports, torch's lazy setup) on the smallest file
        default_compile(min(paths, key=lambda p: p.stat().st_size))
    for path in paths:
        best = min((default_compile(path) for _ in range(max(repeat, 1))),
                   key=lambda r: sum(r[s] for s in COMPILE))
        total, n = sum(best[s] for s in COMPILE), sdd_nodes(path)
        cells = " | ".join(f"{best[s] * 1e3:.1f}" for s in COMPILE)
        sys_cells = "{:.2f} | {:,} | {:.2f} | {:,}".format(*best["sys"])
        lines.append(f"| {path.name} | {n:,} | {cells} | {total * 1e3:.1f} | {n / total:,.0f} | "
                     f"{sys_cells} |")
        print(lines[-1], flush=True)
    return lines


def digests(path: Path) -> str:
    """One --digests row (see the module docstring)."""
    import hashlib

    from pccompiler.logic import model_count, wmc

    def h(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]
    model = pc.from_sdd(path, form="nodes")
    circuit = pc.compile(model, backend="torch")
    weights = torch.from_numpy(np.random.default_rng(0).uniform(
        0.05, 0.95, size=(8, len(model.variables))).astype(np.float32))
    with torch.no_grad():
        answer = wmc(circuit, weights).numpy()
    count = model_count(model)[0] if len(model.variables) <= 600 else "-"
    return (f"| {path.name} | {h(model.SerializeToString(deterministic=True))} | "
            f"{h(circuit.layout.SerializeToString(deterministic=True))} | "
            f"{h(answer.tobytes())} | {count} |")


def profiled(fn, *a):
    prof = cProfile.Profile()
    prof.enable()
    out = fn(*a)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
    return out, text.getvalue()


def circuits(args) -> list[Path]:
    paths = [Path(args.circuits) / f"{n}.sdd" for n in SHARED] if args.shared else []
    for p in [p for p in paths if not p.exists()]:
        print(f"[logic_scale] {p} is missing: skipped", flush=True)
    paths = [p for p in paths if p.exists()]
    paths += [logic_sdds.sdd_file(int(b), Path(args.cache)) for b in args.blocks.split(",") if b]
    return paths + ([Path(args.sdd)] if args.sdd else [])


def import_only(path: Path, repeat: int, forms: list[str]) -> str:
    n = sdd_nodes(path)
    rows = []
    for form in forms:
        best = min(timed(pc.from_sdd, path, form=form)[1] for _ in range(max(repeat, 1)))
        rows.append(f"| {path.name} | {n:,} | {form} | {best:.3f} | {best / n * 1e6:.1f} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", default="", help="comma-separated block counts (100, 1000)")
    ap.add_argument("--shared", action="store_true", help="the four shared SDDs too")
    ap.add_argument("--circuits", default=str(SHARED_DATA_DIR / "circuits"),
                    help="the folder of the shared SDDs")
    ap.add_argument("--cache", default=str(logic_sdds.CACHE),
                    help="the folder of the generated SDDs (made with PySDD when missing)")
    ap.add_argument("--sdd", default="", help="an .sdd file")
    ap.add_argument("--forms", default="groups,nodes", help="groups, nodes or both")
    ap.add_argument("--no-klay", action="store_true", help="skip KLay even if installed")
    ap.add_argument("--verify", action="store_true",
                    help="run the verify pass (ir.check) on the imported Model too")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default); 1 on a loaded shared box, where "
                         "OpenMP threads spinning against other jobs cost seconds")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--import-only", action="store_true", help="time pc.from_sdd alone")
    ap.add_argument("--stages", action="store_true",
                    help="the node form's finer stages (parse, nodes, layerize, layout, "
                         "backend, index, forward), best of --repeat")
    ap.add_argument("--compile", action="store_true",
                    help="file -> circuit with pc.compile's defaults (torch, check on): import, "
                         "verify, layerize, layout, rest; best of --repeat")
    ap.add_argument("--digests", action="store_true",
                    help="sha256 of the Model, Layout and WMC bytes, and model counts")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per circuit and form; the run of least total (or import) is kept")
    ap.add_argument("--out", default="", help="also write the table to this file")
    args = ap.parse_args(argv)
    forms = [f for f in args.forms.split(",") if f]
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
               f"{torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}"
               f", load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    lines = [f"machine: {machine}", ""]
    if args.stages:
        lines += stage_table(circuits(args), args.repeat)
    elif args.compile:
        lines += compile_table(circuits(args), args.repeat)
    elif args.digests:
        lines += ["| circuit | Model | Layout | WMC | model count |", "|---|---|---|---|---|"]
        lines += [digests(p) for p in circuits(args)]
    elif args.import_only:
        lines += ["| circuit | SDD nodes | form | import s | us / SDD node |", "|---|---|---|---|---|"]
        lines += [import_only(p, args.repeat, forms) for p in circuits(args)]
    else:
        lines += ["| circuit | SDD nodes | form | nodes | groups | layers | import s | passes s "
                  "| backend s | forward s | total s | max abs diff |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        profiles = []
        warm = False
        for path in circuits(args):
            n = sdd_nodes(path)
            model_vars = pc.from_sdd(path, form="nodes").variables
            weights = torch.from_numpy(np.random.default_rng(0).uniform(
                0.05, 0.95, size=(8, len(model_vars))).astype(np.float32))
            base = None
            runs = [(f, lambda f=f: run_form(path, f, weights, args.verify)) for f in forms]
            if not args.no_klay:
                runs.append(("klay", lambda: run_klay(path, weights)))
            if not warm:                 # first calls pay imports and torch's lazy setup
                for _, fn in runs:
                    fn()
                warm = True
            tries: dict = {form: [] for form, _ in runs}
            for _ in range(max(args.repeat, 1)):     # interleaved: load swings hit every system
                for form, fn in runs:
                    if not (args.profile and form == "nodes"):
                        tries[form].append(fn())
            for form, fn in runs:
                if args.profile and form == "nodes":
                    res, text = profiled(fn)
                    profiles.append(f"### {path.name}, node form\n\n```\n{text}```")
                else:
                    res = None if tries[form][0] is None else min(
                        tries[form], key=lambda r: sum(r[s if s != "import" else "import_"]
                                                       for s in STAGES))
                if res is None:
                    continue
                base = res["answer"] if base is None else base
                diff = float(np.abs(res["answer"] - base).max())
                total = sum(res[s if s != "import" else "import_"] for s in STAGES)
                lines.append(
                    f"| {path.name} | {n:,} | {form} | {res['nodes']:,} | {res['groups']:,} | "
                    f"{res['layers']} | {res['import_']:.3f} | {res['passes']:.3f} | "
                    f"{res['backend']:.3f} | {res['forward']:.3f} | {total:.3f} | {diff:.1e} |")
                print(lines[-1], flush=True)
        lines += [""] + profiles
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
