"""File to executable of an SDD on the triton path, stage by stage (issue #19:
file-to-executable faster than KLay's).

`bench/logic_race.py`'s `ours_build` (pc.from_sdd(form="nodes") +
pc.compile(backend="triton", precision="ieee", check=False) +
engine.fast_plan) with each piece timed inside the one call, by wrapping
the functions it goes through (inclusive times; a wrapped function called
inside another wrapped one is counted in both):

  parse        the .vtree and .sdd text readers (frontend/sdd.py)
  nodes        the rest of pc.from_sdd: node arrays and the Model
  layerize     the layerize pass (PassReport seconds)
  layout       the layout pass (forward tables, backward tables, hash)
  backend      TritonBackend.compile: the engine, parameters packed
  remap        scratch.compact_remap (the compact plan's slot map)
  plan         plan.build_plan, of which:
    sums       sum_part (forward sum partitions: runs, owners)
    bwd        sum_backward_part (node-flow partitions: parent unions)
    writers    mark_first_writers (store flags, zero and ratio rows)
    upload     upload_fields (the plan's tensors to the device)
  total        wall time of the whole build (not the sum of the rows)

KLay (klaycircuits, if importable): add_sdd_from_file + remove_unused_nodes
+ to_torch_module(semiring="log").to(device) + torch.vmap, as logic_race.py.

`--plans` instead times the engine's remap + plan alone (min of 7 x 20),
on the CPU and on torch's "meta" device, whose dispatch runs the device
path (one packed upload, its views) without a GPU.

`--hashes FILE` instead writes, per circuit, the sha256 of the Layout
bytes, of both kernel plans (every field of every part, tensors as dtype,
shape and bytes) and of the log WMC and its gradient for fixed literal
weights (`--no-wmc`: Layout and plans only, for the 10^5-10^6-node SDDs,
whose WMC the interpreter takes many minutes over); `--compare FILE` says
which differ from an earlier run: a build speed-up must leave all of them
identical.

Every circuit is built once untimed first (so the table is warm: imports,
lazy setup); `--first` instead reports the first build of a fresh process
per circuit (a subprocess each) and what it spends on module imports.
Medians of --repeat builds, ours and KLay taking turns.

    TRITON_INTERPRET=1 .venv/bin/python bench/logic_fx.py --device cpu --blocks 100
    PYTHONPATH=/tmp/pcc:/tmp/extra:bench python3 bench/logic_fx.py --device cuda --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

SHARED = ["sudoku_4", "4-grid", "seq_fun", "road_r"]
ROWS = ("parse", "nodes", "layerize", "layout", "backend", "remap", "plan", "sums", "bwd",
        "writers", "upload", "total")


@contextmanager
def wrapped(spent: dict):
    """Wrap the stage functions (module attributes, looked up at call time)
    so each call adds its seconds to spent[name]; nested calls of one name
    count once (read_vtree calls read_records)."""
    import pccompiler as pc
    from pccompiler.backends import triton as tb
    from pccompiler.backends.triton import engine, plan
    from pccompiler.frontend import sdd
    pc.from_sdd                                  # lazily exported: now in pc.__dict__
    targets = [(pc, "from_sdd", "import"), (sdd, "read_vtree", "parse"), (sdd, "read_records", "parse"),
               (engine, "compact_remap", "remap"), (engine, "build_plan", "plan"),
               (plan, "sum_part", "sums"), (plan, "sum_backward_part", "bwd"),
               (plan, "mark_first_writers", "writers"), (plan, "upload_fields", "upload"),
               (tb.TritonBackend, "compile", "backend")]
    depth: dict[str, int] = {}
    saved = []

    def wrap(fn, name):
        def run(*a, **k):
            depth[name] = depth.get(name, 0) + 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                depth[name] -= 1
                if not depth[name]:
                    spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return run

    for owner, attr, name in targets:
        fn = owner.__dict__[attr]
        saved.append((owner, attr, fn))
        setattr(owner, attr, wrap(fn, name))
    try:
        yield
    finally:
        for owner, attr, fn in saved:
            setattr(owner, attr, fn)


def ours_stages(path: Path, device: str) -> dict:
    """Seconds per stage of one logic_race.ours_build (module docstring)."""
    import logic_race
    spent: dict = {}
    with wrapped(spent):
        circuit, _, spent["total"] = logic_race.ours_build(path, device, "ieee", form="nodes")
    for rec in circuit.compile_report.records:
        if rec.name in ("layerize", "layout"):
            spent[rec.name] = rec.seconds
    spent["nodes"] = spent.get("import", 0.0) - spent.get("parse", 0.0)
    return spent


def klay_build(path: Path, device: str) -> float:
    """Seconds of logic_race.klay_build (file to a vmapped torch module)."""
    import logic_race
    return logic_race.klay_build(path, False, device)[1]


def _digest(value, h) -> None:
    """Feed `value` (a plan: dataclasses, lists, tuples, dicts, tensors,
    numbers) into the hash `h` in a fixed order: field names, then values;
    a tensor as its dtype, shape and bytes."""
    import dataclasses
    import torch
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(type(value).__name__.encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode())
            _digest(getattr(value, f.name), h)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for item in value:
            _digest(item, h)
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for k in sorted(value):
            h.update(repr(k).encode())
            _digest(value[k], h)
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())


def build_hashes(path: Path, device: str, with_wmc: bool = True) -> dict:
    """sha256 of the Layout, of `plan` and `fast_plan`, and (`with_wmc`) of
    the log WMC of 4 rows of fixed literal weights and its gradient
    (ours_build's circuit)."""
    import hashlib
    import numpy as np
    import torch
    import logic_race
    from pccompiler.logic import wmc
    circuit, num_vars, _ = logic_race.ours_build(path, device, "ieee", form="nodes")
    engine = circuit.engine
    out = {"layout": hashlib.sha256(engine.layout.SerializeToString(deterministic=True)).hexdigest()}
    for name in ("fast_plan", "plan"):
        h = hashlib.sha256()
        _digest(getattr(engine, name), h)
        out[name] = h.hexdigest()
    if not with_wmc:
        return out
    rng = np.random.default_rng(0)
    w = torch.tensor(rng.uniform(0.05, 0.95, size=(4, num_vars)), dtype=torch.float32,
                     device=device, requires_grad=True)
    value = wmc(circuit, w)
    (value * torch.tensor([1.0, -0.5, 0.25, 2.0], device=device)).sum().backward()
    for name, t in (("wmc", value), ("grad", w.grad)):
        out[name] = hashlib.sha256(t.detach().cpu().numpy().tobytes()).hexdigest()
    return out


def hash_table(args) -> list[str]:
    """`--hashes`: the hashes per circuit, written to args.hashes as json;
    with --compare, which differ from that file's."""
    got = {name: build_hashes(path, args.device, not args.no_wmc) for name, path in circuits(args)}
    Path(args.hashes).write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(Path(args.compare).read_text()) if args.compare else {}
    lines = ["| circuit | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for name, hashes in got.items():
        old = want.get(name, {})
        lines.append(f"| {name} | " + " | ".join(
            hashes[k][:12] + ("" if not old else " same" if old.get(k) == hashes[k]
                              else " DIFFERS") if k in hashes else "-" for k in KEYS) + " |")
    return lines


KEYS = ("layout", "fast_plan", "plan", "wmc", "grad")


def plan_seconds(path: Path, device: str, reps: int = 20, rounds: int = 7) -> float:
    """Min over `rounds` of the mean seconds of the engine's remap + plan
    (one decoded tensor table, compact_remap, build_plan) of `path`'s Layout
    for `device`: "meta" runs the device path (the packed upload and its
    views) without a GPU. Older code without the `table` argument decodes
    the Layout in each call, as its engine did."""
    import logic_race
    from pccompiler import ir
    from pccompiler.backends.triton.plan import build_plan
    from pccompiler.backends.triton.scratch import compact_remap
    layout = logic_race.ours_build(path, "cpu", "ieee", form="nodes")[0].engine.layout
    shared = "table" in build_plan.__code__.co_varnames

    def once():
        if not shared:
            build_plan(layout, device, compact_remap(layout))
            return
        table = ir.tensor_table(layout)
        build_plan(layout, device, compact_remap(layout, table), table=table)
    once()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            once()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def plan_table(args) -> list[str]:
    """`--plans`: remap + plan ms per circuit on the CPU and on "meta"."""
    lines = ["| circuit | remap + plan, cpu ms | remap + plan, meta (device path) ms |",
             "|---|---|---|"]
    for name, path in circuits(args):
        row = (f"| {name} | {plan_seconds(path, 'cpu') * 1e3:.2f} | "
               f"{plan_seconds(path, 'meta') * 1e3:.2f} |")
        lines.append(row)
        print(row, flush=True)
    return lines


def have_klay() -> bool:
    try:
        import klay  # noqa: F401
        return True
    except ImportError:
        return False


def circuits(args) -> list[tuple[str, Path]]:
    out = [(n, Path(args.circuits) / f"{n}.sdd") for n in SHARED]
    out = [(n, p) for n, p in out if p.exists() or print(f"[fx] {p} missing: skipped")]
    if args.blocks:
        import logic_sdds
        for b in args.blocks:
            out.append((f"rand{b}blk", logic_sdds.sdd_file(b, Path(args.cache))))
    return out + [(Path(s).stem, Path(s)) for s in args.sdd]


def stage_table(args, klay: bool) -> list[str]:
    head = "| circuit | " + " | ".join(f"{r} ms" for r in ROWS) + (
        " | KLay ms | KLay / ours |" if klay else " |")
    lines = [head, "|---" * (len(ROWS) + 1 + 2 * klay) + "|"]
    for name, path in circuits(args):
        ours_stages(path, args.device)                    # warm (untimed)
        if klay:
            klay_build(path, args.device)
        runs, kruns = [], []
        for _ in range(args.repeat):
            runs.append(ours_stages(path, args.device))
            if klay:
                kruns.append(klay_build(path, args.device))
        med = {r: statistics.median(x.get(r, 0.0) for x in runs) for r in ROWS}
        row = f"| {name} | " + " | ".join(f"{med[r] * 1e3:.1f}" for r in ROWS)
        if klay:
            k = statistics.median(kruns)
            row += f" | {k * 1e3:.1f} | {k / med['total']:.2f} |"
        else:
            row += " |"
        lines.append(row)
        print(row, flush=True)
    return lines


FIRST_CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
{cuda_init}
t2 = time.perf_counter()
sys.path.insert(0, {bench!r})
import logic_fx
from pathlib import Path
if {imports}:       # the modules a build imports, timed apart
    import triton
    t3 = time.perf_counter()
    import pccompiler.frontend.sdd, pccompiler.passes, pccompiler.backends.triton.engine
    import pccompiler.backends.triton.plan, pccompiler.logic
    t4 = time.perf_counter()
else:
    t3 = t4 = t2
first = logic_fx.ours_stages(Path({path!r}), {device!r})
second = logic_fx.ours_stages(Path({path!r}), {device!r})
print(json.dumps(dict(torch_import=t1 - t0, cuda_init=t2 - t1, triton_import=t3 - t2,
                      pcc_import=t4 - t3, first=first, second=second)))
"""


def first_child(args, path: Path, imports: bool) -> dict:
    """One fresh process: its first and second build of `path`."""
    code = FIRST_CHILD.format(
        bench=str(Path(__file__).resolve().parent), path=str(path), device=args.device,
        imports=imports, cuda_init="torch.zeros(1, device='cuda'); torch.cuda.synchronize()"
        if args.device == "cuda" else "")
    # -P: the working directory's pccompiler/ folder (the repository root, which
    # lacks ir/) must not shadow the installed package
    res = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         env=os.environ.copy())
    if res.returncode:
        raise SystemExit(f"[fx] first-build child failed on {path}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def first_table(args) -> list[str]:
    """The first build of a fresh process (CUDA already initialised, as
    logic_race.py's sync() does before its timer): cold, and after importing
    triton and pccompiler's modules untimed (their times in the table); the
    second build of the same process for comparison."""
    lines = ["| circuit | first build, cold ms | import triton ms | import pccompiler modules ms "
             "| first build after imports ms | second build ms "
             "| largest stage differences, first after imports - second (ms) |",
             "|---|---|---|---|---|---|---|"]
    for name, path in circuits(args):
        cold = first_child(args, path, False)
        warm = first_child(args, path, True)
        f, s = warm["first"], warm["second"]
        diff = sorted(((f.get(r, 0) - s.get(r, 0), r) for r in ROWS if r != "total"),
                      reverse=True)[:3]
        row = (f"| {name} | {cold['first']['total'] * 1e3:.1f} | {warm['triton_import'] * 1e3:.0f} "
               f"| {warm['pcc_import'] * 1e3:.0f} | {f['total'] * 1e3:.1f} | {s['total'] * 1e3:.1f} | "
               + ", ".join(f"{r} {d * 1e3:.1f}" for d, r in diff) + " |")
        lines.append(row)
        print(row, flush=True)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, or cpu under TRITON_INTERPRET=1")
    ap.add_argument("--circuits", default="", help="folder of the shared SDDs "
                    "(default: pccompiler's shared data)")
    ap.add_argument("--blocks", type=int, nargs="*", default=[],
                    help="bench/logic_sdds.py random block SDDs (100: 1.1e5 SDD nodes)")
    ap.add_argument("--cache", default="", help="their folder (default logic_sdds.CACHE)")
    ap.add_argument("--sdd", nargs="*", default=[], help="more .sdd files")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--first", action="store_true",
                    help="the first build of a fresh process per circuit instead")
    ap.add_argument("--no-klay", action="store_true")
    ap.add_argument("--hashes", default="", help="write the build's hashes (json) here "
                    "instead of timing")
    ap.add_argument("--compare", default="", help="with --hashes: an earlier hashes file")
    ap.add_argument("--no-wmc", action="store_true", help="with --hashes: Layout and plans "
                    "only (the interpreter's WMC of a 10^6-node SDD takes many minutes)")
    ap.add_argument("--plans", action="store_true", help="time the engine's remap + plan "
                    "alone, for the CPU and torch's meta device (the device path)")
    ap.add_argument("--out", default="")
    ap.add_argument("--name", default="logic_fx.md")
    args = ap.parse_args(argv)
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/logic_fx.py: --device cuda needs a GPU (or --device cpu with "
                 "TRITON_INTERPRET=1)")
    if args.device == "cpu" and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        sys.exit("bench/logic_fx.py: --device cpu runs the triton backend under "
                 "TRITON_INTERPRET=1; set it")
    if not args.circuits:
        from pccompiler.data.locate import SHARED_DATA_DIR
        args.circuits = str(SHARED_DATA_DIR / "circuits")
    if not args.cache:
        import logic_sdds
        args.cache = str(logic_sdds.CACHE)
    torch.set_num_threads(args.threads)
    klay = not args.no_klay and have_klay()
    machine = (f"{torch.cuda.get_device_name() if args.device == 'cuda' else platform.machine()}"
               f", {os.cpu_count()} cores, torch {torch.__version__} ({args.threads} thread), "
               f"python {platform.python_version()}, load average "
               + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    cmd = "bench/logic_fx.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"[fx] {machine}", flush=True)
    lines = [f"Machine: {machine}", "", f"Command: `{cmd}`", ""]
    if args.hashes:
        lines += hash_table(args)
    elif args.plans:
        lines += plan_table(args)
    else:
        lines += first_table(args) if args.first else stage_table(args, klay)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / args.name).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
