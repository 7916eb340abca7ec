"""Scale sweep: training-epoch time and peak memory against edge count,
pccompiler (triton) beside PyJuice 2.6.3, HCLT (784 vars x 256 cats) and
PD (28x28, split intervals 7), on one GPU.

Every size runs in its own process (bench/scale_child.py) under a time-out,
so an OOM, a crash or a hang costs one size, not the sweep; the child writes
one JSON line per library as soon as it has it, and this driver rewrites
the markdown table and the JSON (to --out-dir and $OUT) after every size.
Sizes run in the order given (the default: the targets, PD past 2B and
HCLT past 600M edges, then smaller sizes), and a size starts only while the --budget has
--min-start seconds left. A library that ran out of memory at N edges is
not tried on larger circuits of that structure ("OOM at N edges").

Epoch seconds are EXTRAPOLATED: mean of --steps training steps (batch 512,
forward + backward + mini-batch EM) after --warmup, x 117 batches (59,904
of MNIST's 60,000 samples, as bench/race.py).

    PYTHONPATH=.:bench python bench/scale.py                  # the default sweep (GPU)
    python bench/scale.py --sizes hclt:1024,pd:2048 --libs compile   # CPU: compile s, peak RSS
    python bench/scale.py --plot bench/results/scale-....json  # log-log PNG beside the JSON
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run order: the two targets first (PD 2.11B, HCLT 911M edges: building the
# Model's random parameters on the host dominates them, 50-200 ns an edge),
# then the curve from small to large while the budget lasts.
DEFAULT_SIZES = ("pd:3328,hclt:1280,hclt:256,pd:512,hclt:512,pd:1024,hclt:1024,pd:2048,"
                 "hclt:2048,pd:4096")
# PyJuice's README (RTX 4090, its Table 1), quoted in /work/shared/REFERENCES.md.
PYJUICE_README = {"hclt": [(2.56e6, 0.8), (10.1e6, 1.3), (39.9e6, 2.6), (159e6, 8.8),
                           (633e6, 24.9)],
                  "pd": [(15.6e6, 2.0), (2.03e9, 203.7)]}


def parse_sizes(spec: str) -> list[tuple[str, int]]:
    out = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        structure, _, latents = item.partition(":")
        if structure not in ("hclt", "pd") or not latents.isdigit():
            raise SystemExit(f"scale: bad size {item!r}; expected hclt:K or pd:K")
        out.append((structure, int(latents)))
    return out


def split_by_oom(base: dict, libs: list[str], oom_at: dict[tuple[str, str], int]
                 ) -> tuple[list[str], list[dict]]:
    """(libraries to run on this size, rows of those skipped because they
    ran out of memory on a circuit of this structure no larger)."""
    run, skipped = [], []
    for lib in libs:
        limit = oom_at.get((base["structure"], lib))
        if limit is not None and base["edges"] >= limit:
            skipped.append(dict(base, lib=lib, status="skipped",
                                error=f"OOM at {limit / 1e6:.1f}M edges"))
        else:
            run.append(lib)
    return run, skipped


def run_child(structure: str, latents: int, libs: list[str], args, timeout: float,
              result: Path) -> str | None:
    """Run one size; None if the child finished, else why it did not."""
    cmd = [sys.executable, str(HERE / "scale_child.py"), structure, str(latents),
           "--libs", ",".join(libs), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch", str(args.batch), "--precision", args.precision, "--result", str(result)]
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"timeout after {timeout:.0f} s"
    return None if rc == 0 else f"child exit code {rc}"


def read_rows(result: Path) -> list[dict]:
    if not result.exists():
        return []
    return [json.loads(line) for line in result.read_text().splitlines() if line.strip()]


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def markdown(env: dict, rows: list[dict]) -> str:
    """The table, by structure and edge count, with pcc / PyJuice per-edge ratios."""
    lines = [f"# Scale sweep: {env['gpu']}", "",
             f"`{env['command']}`", "",
             f"{env['gpu']}, torch {env['torch']}, triton {env['triton']}, pyjuice "
             f"{env['pyjuice']}, pccompiler {env['pccompiler']}, {env['date']}", "",
             "Epoch seconds are extrapolated: mean of "
             f"{env['steps']} training steps (batch {env['batch']}, forward + backward + "
             f"mini-batch EM) after {env['warmup']} warm-up steps, x 117 batches (59,904 "
             "samples). Build = our Model with random parameters (CPU, shared by both "
             "libraries); compile = pccompiler.compile (passes + plan + upload) or PyJuice "
             "bridge + juice.compile + .to(cuda); first step includes kernel JIT and graph "
             "capture/recording. Peak = torch.cuda.max_memory_allocated; host peak RSS = the "
             "size's process (build + both libraries).", "",
             "| structure | latents | edges | lib | status | build s | compile s | first step s "
             "| step ms | epoch s (extrap.) | ns / edge / epoch | peak GB | host peak RSS GB | pcc / PyJuice epoch |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    pj = {(r["structure"], r["latents"]): r for r in rows
          if r.get("lib") == "pyjuice" and r.get("epoch_s")}
    for r in sorted(rows, key=lambda r: (r["structure"], r.get("edges") or 0, r.get("lib", ""))):
        ratio = None
        other = pj.get((r["structure"], r["latents"]))
        if r.get("lib") == "pcc" and r.get("epoch_s") and other:
            ratio = r["epoch_s"] / other["epoch_s"]
        status = r.get("status", "?")
        if status != "ok" and r.get("error"):
            status += f" ({r['error'][:80]})"
        per_edge = r["epoch_s"] / r["edges"] * 1e9 if r.get("epoch_s") and r.get("edges") else None
        lines.append(
            f"| {r['structure']} | {r['latents']} | {_f(r.get('edges') and r['edges'] / 1e6, 1)}M "
            f"| {r.get('lib')} | {status} | {_f(r.get('build_s'), 1)} | {_f(r.get('compile_s'), 2)} "
            f"| {_f(r.get('first_step_s'), 2)} | {_f(r.get('step_s') and r['step_s'] * 1e3, 1)} "
            f"| {_f(r.get('epoch_s'), 2)} | {_f(per_edge, 2)} | {_f(r.get('peak_gb'), 2)} "
            f"| {_f(r.get('peak_rss_gb'), 1)} | {_f(ratio, 2)} |")
    lines += ["", "Largest circuit per library and structure (status ok), and the first OOM:", ""]
    for structure in ("hclt", "pd"):
        for lib in env["libs"]:
            mine = [r for r in rows if r["structure"] == structure and r.get("lib") == lib]
            ok = [r["edges"] for r in mine if r.get("status") == "ok"]
            oom = [r["edges"] for r in mine if r.get("status") == "oom"]
            lines.append(f"- {structure} {lib}: largest ok {_f(max(ok) / 1e6 if ok else None, 1)}M "
                         f"edges" + (f"; OOM at {min(oom) / 1e6:.1f}M edges" if oom else ""))
    lines += ["", "PyJuice's published largest (its README, RTX 4090): PD 2.03B edges at "
              "203.7 s per epoch, HCLT 633M at 24.9 s."]
    return "\n".join(lines) + "\n"


def gpu_name() -> str:
    """The GPU's name from nvidia-smi: this driver must not open a CUDA
    context (it would hold GPU memory the children need)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out.splitlines()[0].strip() if out else "no GPU"


def environment(args) -> dict:
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "not installed"
    gpu = "cpu (compile only)" if "compile" in args.libs else gpu_name()
    torch_version = version("torch")
    return {"gpu": gpu, "torch": torch_version, "triton": version("triton"),
            "pyjuice": version("pyjuice"),
            "pccompiler": version("pccompiler") + (f" ({os.environ['PCC_COMMIT']})"
                                                   if os.environ.get("PCC_COMMIT") else ""),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
            "precision": args.precision, "libs": args.libs}


def write(env: dict, rows: list[dict], out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, js_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md_path.write_text(markdown(env, rows))
    js_path.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    paths = [md_path, js_path]
    out = os.environ.get("OUT")
    if out and Path(out).resolve() != out_dir.resolve():
        for p in paths:
            shutil.copy(p, Path(out) / p.name)
    return paths


def plot(json_path: Path, png: Path | None) -> Path:
    """Log-log epoch seconds against edges, one line per structure and
    library, PyJuice's README points (RTX 4090) as open markers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = json.loads(json_path.read_text())
    rows = [r for r in data["rows"] if r.get("status") == "ok" and r.get("epoch_s")]
    fig, ax = plt.subplots(figsize=(7, 5))
    colors = {"pcc": "tab:blue", "pyjuice": "tab:orange"}
    marks = {"hclt": "o", "pd": "s"}
    for structure in ("hclt", "pd"):
        for lib in ("pcc", "pyjuice"):
            pts = sorted((r["edges"], r["epoch_s"]) for r in rows
                         if r["structure"] == structure and r["lib"] == lib)
            if pts:
                ax.plot(*zip(*pts), marker=marks[structure], color=colors[lib],
                        linestyle="-" if structure == "hclt" else "--",
                        label=f"{structure} {'pccompiler' if lib == 'pcc' else 'PyJuice'} "
                              f"({data['env']['gpu']})")
        pts = PYJUICE_README[structure]
        ax.plot(*zip(*pts), marker=marks[structure], color="gray", linestyle=":",
                markerfacecolor="none", label=f"{structure} PyJuice README (RTX 4090)")
    for r in data["rows"]:
        if r.get("status") == "oom":
            ax.axvline(r["edges"], color=colors.get(r["lib"], "k"), alpha=0.3, linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("edges")
    ax.set_ylabel("epoch seconds (60k samples, batch 512, extrapolated)")
    ax.set_title("Training epoch vs circuit size (vertical lines: OOM)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    png = png or json_path.with_suffix(".png")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    return png


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES,
                    help=f"comma list of hclt:K / pd:K, run in this order (default {DEFAULT_SIZES})")
    ap.add_argument("--libs", default="pcc,pyjuice",
                    help="pcc,pyjuice (default; GPU) or compile (CPU: passes + plan, peak RSS)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per size (default 8)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--precision", default="tf32", help="pccompiler dot precision")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per size (default 240)")
    ap.add_argument("--budget", type=float, default=440.0,
                    help="seconds for the whole sweep (default 440)")
    ap.add_argument("--min-start", type=float, default=45.0,
                    help="start a size only with this many budget seconds left (default 45)")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--plot", metavar="FROM_JSON", help="draw the log-log PNG of a sweep's JSON")
    ap.add_argument("--png", help="PNG path for --plot (default: beside the JSON)")
    args = ap.parse_args(argv)
    args.libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    if not args.plot and (not args.libs or not set(args.libs) <= {"pcc", "pyjuice", "compile"}
                          or ("compile" in args.libs and len(args.libs) > 1)):
        raise SystemExit(f"scale: --libs must be pcc, pyjuice, both, or compile alone; got {args.libs}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plot:
        print(f"wrote {plot(Path(args.plot), Path(args.png) if args.png else None)}")
        return 0
    sizes = parse_sizes(args.sizes)
    env = environment(args)
    if "compile" not in args.libs and env["gpu"] == "no GPU":
        print("scale: needs a CUDA GPU (use --libs compile on a CPU)", file=sys.stderr)
        return 2
    gpu_slug = env["gpu"].lower().replace(" ", "-").replace("(", "").replace(")", "")
    stem = f"scale-{gpu_slug}-{dt.date.today().isoformat()}" + (f"-{args.tag}" if args.tag else "")
    out_dir = Path(args.out_dir)
    end = time.monotonic() + args.budget
    rows: list[dict] = []
    oom_at: dict[tuple[str, str], int] = {}
    from pccompiler.structures.hclt import hclt_num_edges
    from pccompiler.structures.pd import pd_num_edges
    import race_cases
    tree = race_cases._hclt_tree([])
    print(f"scale: {env['gpu']}, {len(sizes)} sizes, libs {args.libs}, budget {args.budget:.0f} s",
          flush=True)
    for structure, latents in sizes:
        edges = (hclt_num_edges(tree, latents) if structure == "hclt"
                 else pd_num_edges((28, 28), latents, 7))
        base = {"structure": structure, "latents": latents, "edges": edges}
        left = end - time.monotonic()
        libs, skipped = split_by_oom(base, args.libs, oom_at)
        rows += skipped
        if left < args.min_start:
            rows += [dict(base, lib=lib, status="not run", error="sweep budget spent")
                     for lib in libs]
            continue
        if not libs:
            continue
        print(f"== {structure}{latents}: {edges / 1e6:.1f}M edges, {left:.0f} s of budget left",
              flush=True)
        result = out_dir / f".{stem}-{structure}{latents}.jsonl"
        out_dir.mkdir(parents=True, exist_ok=True)
        result.unlink(missing_ok=True)
        t0 = time.monotonic()
        why = run_child(structure, latents, libs, args, min(args.timeout, left), result)
        got = read_rows(result)
        result.unlink(missing_ok=True)
        done = {r["lib"] for r in got}
        for lib in libs:
            if lib not in done:
                got.append(dict(base, lib=lib, status="killed", error=why or "no result"))
        for r in got:
            r["wall_s"] = time.monotonic() - t0
            if r.get("status") == "oom":
                key = (structure, r["lib"])
                oom_at[key] = min(oom_at.get(key, r["edges"]), r["edges"])
        rows += got
        paths = write(env, rows, out_dir, stem)
        print(f"   {time.monotonic() - t0:.0f} s; wrote {paths[0]}", flush=True)
    paths = write(env, rows, out_dir, stem)
    print(markdown(env, rows))
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
