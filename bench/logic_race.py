"""Race: weighted model counting with per-sample literal weights,
pccompiler's triton backend against KLay (klaycircuits, torch backend),
batch 128, on the H100 (issue #19 point 4).

Circuits: the four shared SDDs (../shared/data/circuits: sudoku_4, 4-grid,
seq_fun, road_r) and random block 3-CNF SDDs of about 1e5 and 1e6 nodes
compiled here with PySDD (bench/logic_sdds.py; cached in --cache).

Per circuit and system:
  file->exe   file to a callable on the GPU (warm: the smallest circuit,
              if under 16 MB, is built once by each system before the
              table, see --no-warm):
              ours pc.from_sdd + pc.compile
              (triton, check=False: the importer's Model is valid by
              construction; --verify checks it too) + the kernel plan; KLay Circuit.add_sdd_from_file +
              remove_unused_nodes + to_torch_module + .to(cuda). Triton's
              kernel JIT is not in it (cached across circuits): the first
              call is reported apart (first_ms).
  fwd         log WMC of a [B, V] batch of P(x_v = 1) (no grad), median ms
  fwd+bwd     log WMC and d(sum log WMC)/d weights, median ms
Medians of --iters CUDA-event timings after --warmup calls. Ours is timed
eagerly and replayed as a CUDA graph (torch.cuda.graph around wmc and
autograd.grad); the table takes the faster (column `how`). KLay runs as
its docs say, torch.vmap over the module (log semiring, both literal
weights given), eagerly; --klay-compile adds torch.compile to it.
Both answers are compared (max |log WMC difference|) before timing.

Where ours is above 0.5x KLay's time, a profile follows the table:
layers and kernel launches per forward, and the CUDA time per kernel name.

--skip-klay times ours alone.

    PYTHONPATH=/tmp/pcc:/tmp/extra:bench python3 bench/logic_race.py --out $OUT
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import pccompiler as pc
from pccompiler.data.locate import SHARED_DATA_DIR
from pccompiler.logic import wmc

import logic_sdds

SHARED = ["sudoku_4", "4-grid", "seq_fun", "road_r"]
TARGET = 0.5
# KLay's own JAX times, batch 128, fwd / fwd+bwd ms (shared/data/circuits/SOURCE.md:
# its experiments/nesy/results_cuda_b128.log; another GPU, not side by side)
PUBLISHED = {"sudoku_4": (0.255, 0.358), "4-grid": (0.247, 0.332), "seq_fun": (0.532, 0.805)}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_ms(fn, iters: int, warmup: int) -> float:
    """Median ms of fn: CUDA events on a GPU, wall clock on the CPU (the
    interpreter dry run)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(iters):
        if torch.cuda.is_available():
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def graphed(fn):
    """A CUDA graph of fn (warmed on a side stream, as torch's docs say): its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g.replay


# ------------------------------------------------------------------ systems
def klay_version() -> str:
    """The KLay package's version for the machine line (rows of different
    KLay versions are not comparable: 0.1.2 ran 30-100x slower than 0.0.4)."""
    from importlib import metadata
    try:
        return f"klaycircuits {metadata.version('klaycircuits')}"
    except metadata.PackageNotFoundError:
        return "klaycircuits not installed"


def ours_build(path: Path, device: str, precision: str, form: str = "groups",
               verify: bool = False):
    sync()
    t = time.perf_counter()
    model = pc.from_sdd(path, form=form)
    # check=False: from_sdd's Model passes ir.check by construction (see its
    # docstring); --verify runs the checker too
    circuit = pc.compile(model, backend="triton", device=device, precision=precision,
                         check=verify)
    circuit.engine.fast_plan                      # the kernels' plan, built on first use
    sync()
    return circuit, len(model.variables), time.perf_counter() - t


def ours_calls(circuit, w: torch.Tensor):
    wg = w.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            return wmc(circuit, w)

    def fwd_bwd():
        out = wmc(circuit, wg)
        return torch.autograd.grad(out.sum(), wg)[0]
    return fwd, fwd_bwd


def klay_build(path: Path, compile_it: bool, device: str):
    import klay

    sync()
    t = time.perf_counter()
    c = klay.Circuit()
    c.add_sdd_from_file(str(path), [], [])
    c.remove_unused_nodes()
    module = c.to_torch_module(semiring="log").to(device)
    f = torch.vmap(module)
    if compile_it:
        f = torch.compile(f, mode="reduce-overhead")
    sync()
    return f, time.perf_counter() - t


def klay_calls(f, w: torch.Tensor):
    wg = w.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            return f(torch.log(w), torch.log1p(-w))

    def fwd_bwd():
        out = f(torch.log(wg), torch.log1p(-wg))
        return torch.autograd.grad(out.sum(), wg)[0]
    return fwd, fwd_bwd


# ------------------------------------------------------------------ profile
def profile(circuit, fwd) -> str:
    plan = circuit.engine.fast_plan
    parts = {k: sum(len(getattr(layer, k)) for layer in plan.layers)
             for k in ("inputs", "products", "sums", "sum_backwards")}
    lines = [f"  layers {len(plan.layers)}; launches per forward: inputs {parts['inputs']}, "
             f"products {parts['products']}, sums {parts['sums']} (backward adds "
             f"{parts['sum_backwards']} sum-backward, {parts['products']} product, "
             f"{parts['inputs']} input-grad launches)"]
    from torch.profiler import ProfilerActivity, profile as tprofile
    gpu = torch.cuda.is_available()
    with tprofile(activities=[ProfilerActivity.CUDA if gpu else ProfilerActivity.CPU]) as prof:
        fwd()
        sync()
    table = prof.key_averages().table(sort_by="cuda_time_total" if gpu else "cpu_time_total",
                                      row_limit=8)
    lines += ["  " + ln for ln in table.splitlines()]
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def sdd_nodes(path: Path) -> int:
    """The node count in the .sdd header line `sdd N`."""
    with open(path) as fh:
        for line in fh:
            if line.startswith("sdd "):
                return int(line.split()[1])
    return -1


def circuits(args) -> list[tuple[str, Path]]:
    out = []
    for name in SHARED:
        p = Path(args.circuits) / f"{name}.sdd"
        if p.exists():
            out.append((name, p))
        else:
            print(f"[race] {p} is missing: skipped", flush=True)
    for blocks in args.blocks:
        out.append((f"rand{blocks}blk", logic_sdds.sdd_file(blocks, Path(args.cache))))
    return out


class _Skipped(Exception):
    """--skip-klay: no KLay column."""


def race_one(name: str, path: Path, args, bad: list[str]) -> tuple[tuple, str | None]:
    """One circuit: (table row, profile or None); wrong answers go to `bad`."""
    circuit, nv, ours_file = ours_build(path, args.device, args.precision, args.form,
                                        args.verify)
    g = torch.Generator(device=args.device).manual_seed(0)
    w = torch.rand(args.batch, nv, device=args.device, generator=g) * 0.9 + 0.05
    o_fwd, o_fb = ours_calls(circuit, w)
    t = time.perf_counter()
    a = o_fwd()
    sync()
    first = (time.perf_counter() - t) * 1e3
    res = {}
    for key, fn in (("fwd", o_fwd), ("fb", o_fb)):
        eager = median_ms(fn, args.iters, args.warmup)
        replay = float("inf")
        if args.device == "cuda":
            try:
                replay = median_ms(graphed(fn), args.iters, args.warmup)
            except Exception as e:      # noqa: BLE001 - report it, keep the eager time
                print(f"[race] {name} {key}: no CUDA graph ({type(e).__name__}: {e})",
                      flush=True)
        res[key] = (min(eager, replay), "graph" if replay < eager else "eager")
    kl = None
    try:
        if args.skip_klay:
            raise _Skipped
        f, klay_file = klay_build(path, args.klay_compile, args.device)
        k_fwd, k_fb = klay_calls(f, w)
        b = k_fwd().reshape(args.batch, -1)[:, 0]
        diff = float((a.double() - b.double()).abs().max())
        if not diff < 1e-2 * max(1.0, float(a.abs().max())):
            bad.append(f"{name}: ours and KLay differ by {diff:.3g} in log WMC")
        gdiff = float((o_fb() - k_fb()).abs().max())
        kl = (klay_file, median_ms(k_fwd, args.iters, args.warmup),
              median_ms(k_fb, args.iters, args.warmup), diff, gdiff)
    except _Skipped:
        pass
    except Exception as e:              # noqa: BLE001 - ours is still reported
        bad.append(f"{name}: KLay failed: {type(e).__name__}: {e}")
    print(f"[race] {name}: ours fwd {res['fwd'][0]:.3f} ms ({res['fwd'][1]}), fwd+bwd "
          f"{res['fb'][0]:.3f} ms ({res['fb'][1]}); KLay "
          + (f"{kl[1]:.3f} / {kl[2]:.3f} ms, |dlogWMC| {kl[3]:.1e}, |dgrad| {kl[4]:.1e}"
             if kl else "n/a"), flush=True)
    miss = kl is None or res["fwd"][0] > TARGET * kl[1] or res["fb"][0] > TARGET * kl[2]
    prof = f"### {name}\n```\n{profile(circuit, o_fwd)}\n```" if miss else None
    return (name, nv, sdd_nodes(path), ours_file, first, res, kl), prof


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--blocks", type=int, nargs="*", default=[100],
                    help="random block-CNF SDDs, about 1000 nodes per block (1000: 1e6 "
                         "nodes, minutes of PySDD and of our import today)")
    ap.add_argument("--circuits", default=str(SHARED_DATA_DIR / "circuits"))
    ap.add_argument("--cache", default=str(logic_sdds.CACHE))
    ap.add_argument("--klay-compile", action="store_true")
    ap.add_argument("--verify", action="store_true",
                    help="ours: run the verify pass (ir.check) on the imported Model too")
    ap.add_argument("--skip-klay", action="store_true", help="time ours only")
    ap.add_argument("--no-warm", action="store_true",
                    help="no untimed build of the first circuit before the table (its "
                         "file->exe then includes the process's module imports)")
    ap.add_argument("--form", default="groups", choices=("groups", "nodes"),
                    help="ours: pc.from_sdd's form (groups per vtree node, or the node form)")
    ap.add_argument("--precision", default="ieee",
                    help="ours: ieee (fp32 dots, KLay's accuracy) or tf32")
    ap.add_argument("--device", default="cuda",
                    help="cpu: a dry run of the script under TRITON_INTERPRET=1")
    ap.add_argument("--out", default=".")
    ap.add_argument("--name", default="", help="the report's file name (default logic_race.md)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/logic_race.py needs a CUDA GPU (or --device cpu under the interpreter)")
    machine = (f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}, "
               f"torch {torch.__version__}, python {platform.python_version()}, "
               f"{klay_version()}")
    rows, profiles, bad = [], [], []
    todo = circuits(args)
    small = min(todo, key=lambda c: c[1].stat().st_size) if todo else None
    warm = small is not None and not args.no_warm and small[1].stat().st_size <= WARM_MAX_BYTES
    args.cold = (small[0], *warm_up(small[1], args)) if warm else None
    for name, path in todo:
        print(f"[race] {name}", flush=True)
        row, prof = race_one(name, path, args, bad)
        rows.append(row)
        if prof:
            profiles.append(prof)
    text = report(rows, profiles, machine, args)
    print(text)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / (args.name or "logic_race.md")).write_text(text)
    if bad:
        print("\n".join(["[race] FAILURES:"] + bad), file=sys.stderr)
        return 1
    return 0


WARM_MAX_BYTES = 2 ** 24    # no warm-up on a big circuit: ~0.2 s of imports is noise there


def warm_up(path: Path, args) -> tuple[float, float | None]:
    """Build `path` (the smallest circuit) once with each system before
    the table, untimed there: the first
    build of a process pays module imports (triton, pccompiler's passes and
    backend: about 0.2 s) that KLay's `import klay` pays outside its timer
    too. Returns those first builds' seconds (KLay's None without it)."""
    ours = ours_build(path, args.device, args.precision, args.form, args.verify)[2]
    klay_s = None
    if not args.skip_klay:
        try:
            klay_s = klay_build(path, args.klay_compile, args.device)[1]
        except Exception:           # noqa: BLE001 - race_one reports KLay's failure
            pass
    return ours, klay_s


def report(rows, profiles, machine, args) -> str:
    cmd = "PYTHONPATH=/tmp/pcc:/tmp/extra:bench python3 bench/logic_race.py " + " ".join(
        sys.argv[1:])
    out = ["# Logic race: pccompiler triton vs KLay (torch), WMC with per-sample literal weights",
           "", f"Machine: {machine}. Batch {args.batch}; medians of {args.iters} CUDA-event "
           f"timings after {args.warmup} warm-up calls; ours with precision "
           f"{args.precision}, SDDs imported in the {args.form} form. KLay"
           + (" not run" if args.skip_klay else
              " + torch.compile" if args.klay_compile else " eager (torch.vmap)") + ".",
           "", f"Command: `{cmd}`", "",
           "| circuit | vars | SDD nodes | ours file->exe s | KLay file->exe s | ours first call ms "
           "| ours fwd ms | KLay fwd ms | ratio | ours fwd+bwd ms | KLay fwd+bwd ms | ratio "
           "| max abs diff logWMC / grad |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, nv, nodes, of, first, res, kl in rows:
        kf_s, kf, kb, diff, gdiff = kl or (float("nan"),) * 5
        out.append(f"| {name} | {nv} | {nodes} | {of:.3f} | {kf_s:.3f} | {first:.1f} "
                   f"| {res['fwd'][0]:.3f} ({res['fwd'][1]}) | {kf:.3f} | {res['fwd'][0] / kf:.2f}x "
                   f"| {res['fb'][0]:.3f} ({res['fb'][1]}) | {kb:.3f} | {res['fb'][0] / kb:.2f}x "
                   f"| {diff:.1e} / {gdiff:.1e} |")
    if getattr(args, "cold", None):
        warm_name, ours_cold, klay_cold = args.cold
        out += ["", f"file->exe is warm: {warm_name} was built once per system "
                f"before the table (first build in the process: ours {ours_cold:.3f} s, KLay "
                + (f"{klay_cold:.3f} s" if klay_cold is not None else "n/a")
                + "; module imports, which `import klay` pays outside KLay's timer). "
                "--no-warm times the first build in the table."]
    out += ["", f"Target: ours <= {TARGET}x KLay's time on every circuit."]
    pub = [(name, res) for name, _, _, _, _, res, _ in rows if name in PUBLISHED]
    if pub:
        out += ["", "Against KLay's published JAX times (batch 128, its GPU, not side by side; "
                "shared/data/circuits/SOURCE.md):", "",
                "| circuit | ours fwd ms | KLay JAX fwd ms | ratio | ours fwd+bwd ms "
                "| KLay JAX fwd+bwd ms | ratio |", "|---|---|---|---|---|---|---|"]
        for name, res in pub:
            kf, kb = PUBLISHED[name]
            out.append(f"| {name} | {res['fwd'][0]:.3f} | {kf:.3f} | {res['fwd'][0] / kf:.2f}x "
                       f"| {res['fb'][0]:.3f} | {kb:.3f} | {res['fb'][0] / kb:.2f}x |")
    if profiles:
        out += ["", "## Profiles where ours misses the target", ""] + profiles
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
