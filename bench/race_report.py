"""The race's report: a markdown table and the raw JSON.

Ratios are pccompiler / PyJuice (below 1: pccompiler is faster or smaller);
their geometric mean is over the cases where both libraries produced the
number. The roofline line turns a case's work (race_cases.Work) and measured
time into achieved FLOP/s and bytes/s against the H100 ceilings measured in
/work/shared/REFERENCES.md.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import race_cases

# H100 80GB ceilings (REFERENCES.md: torch matmul 8192^3, 8 GB device copy).
CEILINGS = {"tf32_flops": 356e12, "fp32_flops": 52e12, "copy_bytes": 3.0e12}
RATIO_KEYS = [("epoch", "epoch_s"), ("forward", "forward_s"), ("peak_mem", "peak_gb")]


def _ratio(a, b):
    return a / b if a and b else None


def add_ratios_and_roofline(env: dict, results: list[dict]) -> dict:
    """Fill res['ratios'] / res['roofline'] in place; return the geometric means."""
    batch, batches = env["batch"], env["batches"]
    logs: dict[str, list[float]] = {k: [] for k, _ in RATIO_KEYS}
    logs["compile_warm"], logs["compile_cold"] = [], []
    for res in results:
        pcc, pj = res["pcc"], res["pyjuice"]
        ratios = {k: _ratio(pcc.get(key), pj.get(key)) for k, key in RATIO_KEYS}
        ratios["compile_cold"] = _ratio(pcc.get("compile_cold_s"), pj.get("compile_s"))
        ratios["compile_warm"] = _ratio(pcc.get("compile_warm_s"), pj.get("compile_s"))
        res["ratios"] = ratios
        for k, v in ratios.items():
            if v:
                logs[k].append(math.log(v))
        if "edges" not in res:
            continue
        work = race_cases.Work(res["edges"], res["sum_edges"], res["nodes"], res["params"])
        roof = {}
        for lib in ("pcc", "pyjuice"):
            r = res[lib]
            for kind, fn in (("train", work.train), ("forward", work.forward)):
                secs = r.get("epoch_s" if kind == "train" else "forward_s")
                if not secs:
                    continue
                flops, bytes_ = fn(batch)
                roof[f"{lib}_{kind}"] = {
                    "tflops": flops * batches / secs / 1e12,
                    "tb_per_s": bytes_ * batches / secs / 1e12,
                    "pct_tf32": 100 * flops * batches / secs / CEILINGS["tf32_flops"],
                    "pct_fp32": 100 * flops * batches / secs / CEILINGS["fp32_flops"],
                    "pct_copy": 100 * bytes_ * batches / secs / CEILINGS["copy_bytes"],
                }
        res["roofline"] = roof
    geo: dict = {k: (math.exp(sum(v) / len(v)) if v else None) for k, v in logs.items()}
    geo.update({f"{k}_cases": len(v) for k, v in logs.items()})
    return geo


def _f(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _bsp_scaling(results: list[dict]) -> list[str]:
    """Lines showing epoch time / kept fraction against the full layer."""
    rows = [r for r in results if r.get("kept_fraction")]
    full = {lib: next((r[lib].get("epoch_s") for r in rows if r["kept_fraction"] == 1.0), None)
            for lib in ("pcc", "pyjuice")}
    if not rows:
        return []
    out = ["", "### Block-sparse scaling (epoch time relative to the full layer; ideal = kept fraction)",
           "", "| case | kept | pcc epoch s | pcc relative | PyJuice epoch s | PyJuice relative |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [r["name"], _f(r["kept_fraction"], 2)]
        for lib in ("pcc", "pyjuice"):
            e = r[lib].get("epoch_s")
            cells += [_f(e), _f(e / full[lib] if e and full[lib] else None, 2)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def markdown(env: dict, results: list[dict], geo: dict) -> str:
    lines = [f"# pccompiler vs PyJuice race: {env['gpu']}, {env['date']}", "",
             f"torch {env['torch']}, triton {env['triton']}, pyjuice {env['pyjuice']}, "
             f"pccompiler {env['pccompiler']}, Python {env['python']}", "",
             f"Command: `{env['command']}`", "",
             f"Epoch = {env['batches']} batches of {env['batch']} (forward + backward + mini-batch "
             f"EM, step {env['step_size']}, pseudocount {env['pseudocount']}); forward = the same "
             f"batches under no_grad; median of {env['repeats']} run(s). Both libraries run our "
             f"circuit with our parameters. Ratios are pccompiler / PyJuice (< 1: pccompiler wins). "
             f"Peak memory is above the shared data.", "",
             "| case | edges | compile s pcc cold / warm / PyJuice | epoch s pcc / PyJuice (ratio) "
             "| forward s pcc / PyJuice (ratio) | peak GB pcc / PyJuice | LL max abs (rel) diff "
             "of pcc-triton vs PyJuice fp32 / PyJuice bf16 / pcc-torch |",
             "|---|---:|---|---|---|---|---|"]
    for r in results:
        pcc, pj, ra = r["pcc"], r["pyjuice"], r.get("ratios", {})
        ag = r.get("agreement", {}) or {}

        def diff(key):
            a = ag.get(key)
            if not a:
                return "-"
            rel = a.get("max_rel")
            return "%.1e" % a["max_abs"] + (" (rel %.0e)" % rel if rel is not None else "")
        lines.append(
            f"| {r['name']} | {_f(r.get('edges', 0) / 1e6, 2)}M "
            f"| {_f(pcc.get('compile_cold_s'), 2)} / {_f(pcc.get('compile_warm_s'), 2)} / "
            f"{_f(pj.get('compile_s'), 2)} "
            f"| {_f(pcc.get('epoch_s'))} / {_f(pj.get('epoch_s'))} ({_f(ra.get('epoch'), 2)}) "
            f"| {_f(pcc.get('forward_s'))} / {_f(pj.get('forward_s'))} ({_f(ra.get('forward'), 2)}) "
            f"| {_f(pcc.get('peak_gb'), 2)} / {_f(pj.get('peak_gb'), 2)} "
            f"| {diff('triton_vs_pyjuice_fp32')} / {diff('triton_vs_pyjuice_bf16')} / "
            f"{diff('triton_vs_torch')} |")
    lines += ["", "Geometric means of pccompiler / PyJuice: " + ", ".join(
        f"{k} {_f(geo.get(k), 3)} ({geo.get(k + '_cases', 0)} cases)"
        for k in ("epoch", "forward", "peak_mem", "compile_cold", "compile_warm")), ""]
    lines += ["### Roofline (achieved / H100 ceiling: tf32 356 TFLOP/s, fp32 52 TFLOP/s, "
              "copy 3.0 TB/s)", "",
              "FLOPs = 2 x edges x batch forward, 3x that for training; bytes = node values "
              "written and read once + parameters (training: 3x + flows and EM update).", "",
              "| case | lib | train TFLOP/s (% tf32, % fp32) | train TB/s (% copy) "
              "| forward TFLOP/s (% tf32) | forward TB/s (% copy) |", "|---|---|---|---|---|---|"]
    for r in results:
        roof = r.get("roofline", {})
        for lib in ("pcc", "pyjuice"):
            t, f = roof.get(f"{lib}_train"), roof.get(f"{lib}_forward")
            if not t and not f:
                continue
            cell_t = f"{t['tflops']:.2f} ({t['pct_tf32']:.1f}%, {t['pct_fp32']:.0f}%)" if t else "-"
            cell_tb = f"{t['tb_per_s']:.2f} ({t['pct_copy']:.0f}%)" if t else "-"
            cell_f = f"{f['tflops']:.2f} ({f['pct_tf32']:.1f}%)" if f else "-"
            cell_fb = f"{f['tb_per_s']:.2f} ({f['pct_copy']:.0f}%)" if f else "-"
            lines.append(f"| {r['name']} | {lib} | {cell_t} | {cell_tb} | {cell_f} | {cell_fb} |")
    lines += _bsp_scaling(results)
    details = ["", "### Details", ""]
    for r in results:
        pcc, pj = r["pcc"], r["pyjuice"]
        details.append(
            f"- **{r['name']}**: {r['description']}; data {r.get('data_dtype', 'int64')}; "
            f"built in {_f(r.get('build_s'), 1)} s; "
            f"first step (JIT) pcc {_f(pcc.get('first_step_s'), 2)} s, PyJuice "
            f"{_f(pj.get('first_step_s'), 2)} s; PyJuice bridge {_f(pj.get('bridge_s'), 2)} s, "
            f"PyJuice edges {pj.get('num_edges', '-')} (with its wrappers and pass-throughs), "
            f"block sizes {pj.get('block_sizes', '-')}"
            + "".join(f"; {n}" for n in r.get("notes", []))
            + "".join(f"; **error [{k}]** {v}" for k, v in r.get("errors", {}).items()))
    return "\n".join(lines + details) + "\n"


def write_reports(env: dict, results: list[dict], out_dir: Path, tag: str,
                  extra_dir: str | None) -> list[Path]:
    geo = add_ratios_and_roofline(env, results)
    gpu = re.sub(r"[^a-z0-9]+", "-", env["gpu"].lower()).strip("-")
    stem = f"race-{gpu}-{env['date'][:10]}{tag}"
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md_path.write_text(markdown(env, results, geo))
    json_path.write_text(json.dumps({"environment": env, "geomean": geo, "cases": results},
                                    indent=1, default=float))
    paths = [md_path, json_path]
    if extra_dir and Path(extra_dir).resolve() != out_dir.resolve():
        Path(extra_dir).mkdir(parents=True, exist_ok=True)
        for p in (md_path, json_path):
            paths.append(Path(shutil.copy(p, Path(extra_dir) / p.name)))
    return paths
