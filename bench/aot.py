"""Cold start: seconds from `load` to the first log-likelihood and to the end
of the first EM step, each in a fresh process with an empty Triton cache.

Paths compared per case (bench/race_cases.py):
  jit        today's path: the .pcc loaded with kernels=False, so Triton
             compiles every kernel on first use
  aot        the .pcc built with `target=` for this GPU: kernels restored from
             the artifact, zero compilations; the empty cache still builds
             Triton's host-side launchers (C, once per machine)
  aot_host   as aot, but the cache already holds those launchers from an
             earlier run (every kernel deleted from it): what a second
             artifact costs on the same machine (issue #16's <= 0.5 s row)
  aot_host_cache  as aot_host with load(kernels="cache"): the kernels go into
             Triton's file cache and each first launch's triton.compile finds
             them there (the path before aot/install.py)
  aot_host_pre  as aot_host with load(kernels="preload"): every stored kernel
             also loaded into the GPU at load, on a thread pool; the three
             aot_host arms alternate `--repeats` times, medians reported
  aot_pre    as aot (empty cache), loaded with kernels="preload": every
             stored kernel and its launcher loaded at once on a thread pool
  pyjuice    (--pyjuice) the PyJuice bridge + juice.compile + first forward
             and first MiniBatchEM step (forward, backward, opt.step)

    PYTHONPATH=/tmp/pcc:bench python3 bench/aot.py --cases hclt32,pd128 --out OUT.md

`--cpu-proxy` (no GPU needed): the same two aot_host arms on this CPU, for a
case's sm_90 artifact cross-compiled here, up to the first log-likelihood,
whose launches run the JIT's own path to the no-op launches of the stand-in
driver (aot/target.py): what the install saves on the host, not GPU time.

    .venv/bin/python bench/aot.py --cpu-proxy --cases hclt32 --repeats 7

Each timed run is a subprocess (`--child ...`); CUDA is initialised before
the clock starts in every path, so the numbers leave out context creation.
The batch is `--batch` uniform random categories (seed 0).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_SIZE, PSEUDOCOUNT = 0.1, 0.1


class GcClock:
    """Seconds the cyclic garbage collector ran, by generation, while this
    is open: a full (generation 2) collection walks every object the
    process holds (torch's and triton's included), about 0.1 s on the CPU
    box, and lands wherever the allocation count happens to trip it."""

    def __init__(self):
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._start = 0.0

    def _tick(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.counts[info["generation"]] += 1

    def __enter__(self) -> "GcClock":
        gc.callbacks.append(self._tick)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._tick)

    def report(self) -> dict:
        return {"gc_full_s": round(self.seconds[2], 4), "gc_full_n": self.counts[2],
                "gc_young_s": round(self.seconds[0] + self.seconds[1], 4)}


def _data(num_cats: int, num_vars: int, batch: int):
    import torch
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, num_cats, (batch, num_vars), generator=gen).cuda()


def child_build(case_name: str, path: str, batch: int, target: str | None = None) -> dict:
    """The case's artifact with kernels for `target` (default: this GPU)."""
    import pccompiler
    from pccompiler.backends.triton.aot.target import current_target, target_name
    from race_cases import all_cases
    case = all_cases()[case_name]
    t0 = time.perf_counter()
    model = case.build()
    t1 = time.perf_counter()
    circuit = pccompiler.compile(model, backend="triton",
                                 target=target or target_name(current_target()),
                                 batch_sizes=[batch], data_dtypes=["int64"])
    t2 = time.perf_counter()
    circuit.save(path)
    entry = circuit.aot_kernels[0]
    return {"model_s": t1 - t0, "compile_s": t2 - t1, "kernels": len(entry["kernels"]),
            "kernel_mb": sum(len(v) for v in circuit.aot_kernels[1].values()) / 1e6,
            "num_vars": len(model.variables), "num_cats": case.num_cats}


def child_load(path: str, batch: int, num_cats: int, num_vars: int, kernels: bool | str,
               pause_gc: bool = False) -> dict:
    import torch
    import pccompiler
    from pccompiler.backends.triton.aot import CompileCounter
    x = _data(num_cats, num_vars, batch)
    profile_to = os.environ.get("AOT_PROFILE_TO")
    profiler = None
    if profile_to:
        import cProfile
        profiler = cProfile.Profile()
    torch.cuda.synchronize()
    with CompileCounter() as counter:
        if profiler:
            profiler.enable()
        t0 = time.perf_counter()
        with GcClock() as gc_clock:
            if pause_gc:
                gc.disable()
            circuit = pccompiler.load(path, kernels=kernels)
            if pause_gc:
                gc.enable()
            t_load = time.perf_counter()
            ll = circuit.log_prob(x)
            torch.cuda.synchronize()
            t_ll = time.perf_counter()
        if profiler:
            profiler.disable()
            _write_profile(profiler, profile_to, t_load - t0, t_ll - t0)
        circuit.em_step(x, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)
        torch.cuda.synchronize()
        t_em = time.perf_counter()
    return {"load_s": t_load - t0, "ll_s": t_ll - t0, "em_s": t_em - t0,
            "mean_ll": float(ll.double().mean()), "compiled": len(counter.compiled),
            "compiled_names": sorted({n for n, _ in counter.compiled}), "hits": counter.hits,
            **gc_clock.report()}


def child_cpu_load(path: str, batch: int, num_vars: int, mode: str) -> dict:
    """CPU stand-in for one aot_host load -> first LL (`--cpu-proxy`): the
    load's kernel work as `pccompiler.load` does it for each mode ("1":
    verify and install, aot/install.py; "cache": triton_key on a thread,
    verify and write into Triton's cache, the thread joined before the
    first launch), the engine build, its plan and first log-likelihood."""
    import torch
    from triton.runtime import cache as triton_cache
    from pccompiler.backends.triton.aot import CompileCounter, store
    from pccompiler.backends.triton.aot.install import install_kernels
    from pccompiler.backends.triton.aot.record import all_kernels
    from pccompiler.backends.triton.aot.target import cross_driver, parse_target
    from pccompiler.backends.triton.aot.warm import hash_triton_in_background
    from pccompiler.backends.triton.engine import TritonEngine
    from pccompiler.ir.artifact import read_pcc
    x = torch.zeros(batch, num_vars, dtype=torch.int64)
    with cross_driver(parse_target("cuda:sm_90"), all_kernels()), CompileCounter() as counter, \
            GcClock() as gc_clock:
        t0 = time.perf_counter()
        hashing = hash_triton_in_background() if mode == "cache" else None
        art = read_pcc(path, defer_hash=True)
        entry = art.manifest["kernels"]
        kernels = store.verify_kernels(entry, art.sections, path)
        store.write_to_cache(install_kernels(entry, kernels)[1] if mode == "1" else kernels, path)
        t_kernels = time.perf_counter()
        engine = TritonEngine(art.mapped_model, art.layout, device="cpu", cuda_graphs=False,
                              arrays=art.arrays)
        art.arrays.verify()
        engine.fast_plan
        if hashing is not None:
            hashing.join()
        t_engine = time.perf_counter()
        engine.root_log_prob(x)
        t_ll = time.perf_counter()
    return {"kernels_s": t_kernels - t0, "engine_s": t_engine - t_kernels,
            "first_ll_s": t_ll - t_engine, "ll_s": t_ll - t0, "hits": counter.hits,
            "compiled": len(counter.compiled),
            "triton_key": triton_cache.triton_key.cache_info().currsize > 0,
            "gluon": "triton.experimental.gluon" in sys.modules, **gc_clock.report()}


def run_cpu_proxy(name: str, batch: int, work: str, repeats: int) -> dict:
    """`--cpu-proxy` for one case: build its sm_90 artifact here, then both
    aot_host arms `repeats` times, alternating, each in a fresh process."""
    path = os.path.join(work, f"{name}.pcc")
    build = _spawn(["build", name, path, str(batch), "cuda:sm_90"],
                   tempfile.mkdtemp(dir=work, prefix="cache-"))
    runs = _alternate(CPU_ARMS, repeats, lambda mode: _spawn(
        ["cpu_load", path, str(batch), str(build["num_vars"]), mode],
        tempfile.mkdtemp(dir=work, prefix="cache-")))
    return {"case": name, "build": build, **runs}


def cpu_table(rows: list[dict], command: str, machine: str) -> str:
    """Median (min) seconds of each phase of the `--cpu-proxy` runs."""
    phases = ("kernels_s", "engine_s", "first_ll_s", "ll_s", "gc_full_s")
    out = [f"# CPU stand-in: load -> first LL, kernels install vs file cache", "",
           f"Command: `{command}`", "", f"Machine: {machine}", "",
           "| case | arm | runs | kernels s | engine + plan s | first LL s | total s | "
           "full GC s (in total) | cache hits | triton_key hashed |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for key in CPU_ARMS:
            runs = row[key]
            cells = [f"{statistics.median(r[p] for r in runs):.3f} "
                     f"({min(r[p] for r in runs):.3f})" for p in phases]
            out.append(f"| {row['case']} | {key} | {len(runs)} | " + " | ".join(cells)
                       + f" | {runs[0]['hits']} | {runs[0]['triton_key']} |")
    out += ["", "median (min) of the runs; kernels: read_pcc + verify + install or write to "
            "Triton's cache; engine + plan: TritonEngine, its compact plan and (cache arm) the "
            "join of the triton_key thread; first LL: the forward's launches through the JIT "
            "to no-op launches (aot/target.py's stand-in driver)."]
    return "\n".join(out) + "\n"


def _write_profile(profiler, path: str, load_s: float, ll_s: float) -> None:
    """Where load -> first log-likelihood goes: the top of cProfile by
    cumulative and by own time (profiling inflates the Python-heavy parts,
    so read it beside the unprofiled row)."""
    import io
    import pstats
    text = io.StringIO()
    text.write(f"load {load_s:.3f} s, load -> first LL {ll_s:.3f} s (under cProfile)\n")
    for key in ("cumulative", "tottime"):
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(35)
    Path(path).write_text(text.getvalue())


def child_pyjuice(case_name: str, batch: int) -> dict:
    import torch
    import pyjuice as juice
    from pyjuice_bridge import convert
    from race_cases import all_cases
    case = all_cases()[case_name]
    model = case.build()
    x = _data(case.num_cats, len(model.variables), batch)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    pc = juice.compile(convert(model, case.pyjuice_block).root, verbose=False)
    pc.to(torch.device("cuda"))
    with torch.no_grad():
        pc(x)
    torch.cuda.synchronize()
    t_ll = time.perf_counter()
    opt = juice.optim.MiniBatchEM(pc, step_size=STEP_SIZE, pseudocount=PSEUDOCOUNT)
    pc(x).mean().backward()
    opt.step()
    torch.cuda.synchronize()
    return {"ll_s": t_ll - t0, "em_s": time.perf_counter() - t0}


def _spawn(args: list[str], cache: str, profile_to: str | None = None) -> dict:
    env = dict(os.environ, TRITON_CACHE_DIR=cache)
    env.pop("AOT_PROFILE_TO", None)
    if profile_to:
        env["AOT_PROFILE_TO"] = profile_to
    env.pop("TRITON_INTERPRET", None)
    extra = env.pop("AOT_PYJUICE_PATH", "")
    if extra and args[0] == "pyjuice":     # PyJuice's folder on the path of its own child only
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), extra) if p)
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"aot bench child {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _keep_host_code(cache: str) -> None:
    """Delete every kernel group, keep Triton's compiled launchers (.so)."""
    for d in Path(cache).iterdir():
        if d.is_dir() and not any(f.suffix == ".so" for f in d.iterdir()):
            shutil.rmtree(d)


#: The load modes timed with Triton's launchers already built, by column.
HOST_ARMS = {"aot_host": "1", "aot_host_cache": "cache", "aot_host_pre": "preload"}
if os.environ.get("AOT_NOGC") == "1":
    # what pausing the cyclic GC over `load` (then on again) would give: no
    # full collection can land inside the load (GcClock says where they land)
    HOST_ARMS["aot_host_nogc"] = "1-nogc"
#: Those `--cpu-proxy` stands in for (preload's GPU loads are no-ops there).
CPU_ARMS = {"aot_host": "1", "aot_host_cache": "cache"}


def _alternate(arms: dict[str, str], repeats: int, run) -> dict[str, list[dict]]:
    """{arm: [run(mode) for each repeat]}, the arms taking turns."""
    runs: dict[str, list[dict]] = {key: [] for key in arms}
    for _ in range(repeats):
        for key, mode in arms.items():
            runs[key].append(run(mode))
    return runs


def _host_arms(load_args: list[str], warm: str, repeats: int) -> dict:
    """Each HOST_ARMS mode `repeats` times, alternating, every run in a
    fresh process on the cache `warm` emptied of kernels; per arm the run
    of median load -> first LL, with every run's time in `ll_s_all`."""
    def run(mode: str) -> dict:
        _keep_host_code(warm)
        return _spawn(["load", *load_args, mode], warm)

    runs = _alternate(HOST_ARMS, repeats, run)
    out = {}
    for key, arm in runs.items():
        arm.sort(key=lambda r: r["ll_s"])
        out[key] = dict(arm[(len(arm) - 1) // 2], ll_s_all=[r["ll_s"] for r in arm])
    return out


def run_case(name: str, batch: int, work: str, pyjuice: bool,
             profile_dir: str | None = None, repeats: int = 3) -> dict:
    path = os.path.join(work, f"{name}.pcc")
    fresh = lambda: tempfile.mkdtemp(dir=work, prefix="cache-")  # noqa: E731
    row = {"case": name, "build": _spawn(["build", name, path, str(batch)], fresh())}
    b = row["build"]
    print(f"  {name}: built {b['kernels']} kernels ({b['kernel_mb']:.1f} MB) in "
          f"{b['compile_s']:.1f} s", flush=True)
    load_args = [path, str(batch), str(b["num_cats"]), str(b["num_vars"])]
    row["jit"] = _spawn(["load", *load_args, "0"], fresh())
    row["aot"] = _spawn(["load", *load_args, "1"], fresh())
    row["aot_pre"] = _spawn(["load", *load_args, "preload"], fresh())
    warm = fresh()
    _spawn(["load", *load_args, "1"], warm)
    row.update(_host_arms(load_args, warm, repeats))
    if profile_dir:     # one more run per arm under cProfile, beside the timed ones
        for key, mode in HOST_ARMS.items():
            _keep_host_code(warm)
            _spawn(["load", *load_args, mode], warm,
                   profile_to=os.path.join(profile_dir, f"profile_{name}_{key}.txt"))
    if pyjuice:
        row["pyjuice"] = _spawn(["pyjuice", name, str(batch)], fresh())
    for key in ("jit", "aot", "aot_pre", *HOST_ARMS, "pyjuice"):
        if key in row:
            r = row[key]
            print(f"  {name} {key:<8} LL {r['ll_s']:7.2f} s  EM {r['em_s']:7.2f} s"
                  + (f"  compiled {r['compiled']}" if "compiled" in r else ""), flush=True)
    return row


def table(rows: list[dict], batch: int, command: str, machine: str) -> str:
    out = [f"# Cold start: load -> first LL / first EM step (batch {batch}, fresh process, "
           "empty Triton cache)", "", f"Command: `{command}`", "", f"Machine: {machine}", "",
           "| case | kernels | jit LL s | jit EM s | aot LL s | aot EM s | aot compiled | "
           "aot_pre LL s | aot_pre EM s | "
           + "".join(f"{key} LL s | {key} EM s | " for key in HOST_ARMS)
           + "pyjuice LL s | pyjuice EM s |", "|---" * (11 + 2 * len(HOST_ARMS)) + "|"]
    f = lambda r, k: f"{r[k]:.2f}" if r else "-"   # noqa: E731
    for row in rows:
        pj = row.get("pyjuice")
        out.append(f"| {row['case']} | {row['build']['kernels']} | {f(row['jit'], 'll_s')} | "
                   f"{f(row['jit'], 'em_s')} | {f(row['aot'], 'll_s')} | {f(row['aot'], 'em_s')} | "
                   f"{row['aot']['compiled']} | {f(row['aot_pre'], 'll_s')} | "
                   f"{f(row['aot_pre'], 'em_s')} | "
                   + "".join(f"{f(row[key], 'll_s')} | {f(row[key], 'em_s')} | "
                             for key in HOST_ARMS)
                   + f"{f(pj, 'll_s')} | {f(pj, 'em_s')} |")
    out += ["", "aot: kernels from the artifact, Triton's launchers built in the empty cache; "
            "aot_pre: the same with load(kernels=\"preload\") (all kernels and launchers at "
            "load, in parallel); aot_host: launchers already built on this machine (kernels "
            "deleted from the cache), kernels built into the JIT's memory at load "
            "(aot/install.py); aot_host_cache: the same with load(kernels=\"cache\"), the "
            "file-cache path before it; aot_host_pre: the same with load(kernels=\"preload\"). "
            "aot_host columns: the run of median LL of the repeats (all runs' LL s in the "
            "JSON, `ll_s_all`)."]
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "build":
            out = child_build(rest[0], rest[1], int(rest[2]), *rest[3:])
        elif kind == "cpu_load":
            out = child_cpu_load(rest[0], int(rest[1]), int(rest[2]), rest[3])
        elif kind == "load":
            mode = {"0": False, "1": True, "1-nogc": True}.get(rest[4], rest[4])
            out = child_load(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), mode,
                             pause_gc=rest[4] == "1-nogc")
        else:
            out = child_pyjuice(rest[0], int(rest[1]))
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="hclt32,pd128,hmm1024,bsp050")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--pyjuice", action="store_true", help="also time PyJuice's cold start")
    ap.add_argument("--out", default=None, help="markdown results file")
    ap.add_argument("--json", default=None, help="raw results file")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="also profile one load -> first LL of each aot_host arm per case "
                         "(cProfile tables written to DIR/profile_<case>_<arm>.txt)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each aot_host arm per case, alternating (median reported)")
    ap.add_argument("--cpu-proxy", action="store_true",
                    help="no GPU: time the aot_host arms' host work on this CPU (see above)")
    args = ap.parse_args()
    command = "python3 bench/aot.py " + " ".join(sys.argv[1:])
    if args.cpu_proxy:
        main_cpu_proxy(args, command)
        return
    import torch
    machine = (f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
               f"triton {__import__('triton').__version__}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="aot-bench-") as work:
        for name in args.cases.split(","):
            rows.append(run_case(name.strip(), args.batch, work, args.pyjuice, args.profile,
                                 args.repeats))
            text = table(rows, args.batch, command, machine)   # written after every case
            if args.out:
                Path(args.out).write_text(text)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    print(text)


def main_cpu_proxy(args, command: str) -> None:
    import platform
    import triton
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load "
               f"average {os.getloadavg()[0]:.2f} at start; torch "
               f"{__import__('torch').__version__}, triton {triton.__version__}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="aot-cpu-") as work:
        for name in args.cases.split(","):
            rows.append(run_cpu_proxy(name.strip(), args.batch, work, args.repeats))
    text = cpu_table(rows, command, machine + f"; {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()
