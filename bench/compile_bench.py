"""Compile-time benchmark: cold and cached `passes.compile_model` per structure.

Each case runs in a fresh subprocess (so ru_maxrss is that case's peak):
build the circuit with pccompiler.structures and lower it, then compile it
cold (empty cache folder) and, in a second fresh subprocess, from the cache.
Writes a Markdown table (default bench/results/compile.md).

    .venv/bin/python bench/compile_bench.py [--cases hclt-32,pd-32] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CASES = {
    "hclt-32": ("hclt", dict(num_vars=784, num_cats=256, num_latents=32)),
    "hclt-128": ("hclt", dict(num_vars=784, num_cats=256, num_latents=128)),
    "hclt-512": ("hclt", dict(num_vars=784, num_cats=256, num_latents=512)),
    "pd-32": ("pd", dict(shape=(28, 28), num_latents=32)),
    "pd-128": ("pd", dict(shape=(28, 28), num_latents=128)),
    "rat_spn-64": ("rat_spn", dict(num_vars=784, num_latents=64, depth=6, reps=8)),
    "hmm-256": ("hmm", dict(length=32, emits=4096, num_latents=256)),
    "hmm-1024": ("hmm", dict(length=32, emits=4096, num_latents=1024)),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(kind: str, p: dict):
    import networkx as nx
    import pccompiler as pc
    if kind == "hclt":
        tree = nx.random_labeled_tree(p["num_vars"], seed=0) if hasattr(
            nx, "random_labeled_tree") else nx.random_tree(p["num_vars"], seed=0)
        root = pc.hclt(None, p["num_latents"], p["num_cats"], tree=tree)
    elif kind == "pd":
        root = pc.pd(p["shape"], p["num_latents"], split_intervals=7)
    elif kind == "rat_spn":
        root = pc.rat_spn(p["num_vars"], p["num_latents"], p["depth"], p["reps"])
    else:
        root = pc.hmm(p["length"], p["num_latents"], p["emits"])
    return pc.lower(root, validate=False)


def run_case(name: str, cache_dir: str) -> dict:
    """One measurement in this process (called in a fresh subprocess)."""
    from pccompiler import passes
    from pccompiler.ir import pcir
    kind, params = CASES[name]
    t0 = time.perf_counter()
    model = build(kind, params)
    build_s = time.perf_counter() - t0
    rss_model = _rss_mb()
    edges = 0
    table = {t.name: t for t in model.tensors}
    for g in model.groups:
        if g.kind == pcir.SUM and g.sum.weights:
            dims = table[g.sum.weights].dims
            n = 1
            for d in dims:
                n *= d
            edges += n
    t0 = time.perf_counter()
    result = passes.compile_model(model, cache=cache_dir, backend="bench")
    compile_s = time.perf_counter() - t0
    return {"case": name, "build_s": build_s, "compile_s": compile_s, "hit": result.cache_hit,
            "rss_after_build_mb": rss_model, "peak_rss_mb": _rss_mb(), "weights": edges,
            "groups": len(model.groups), "slots": int(result.layout.num_slots),
            "passes": {r.name: round(r.seconds, 3) for r in result.report.records}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "compile.md"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one, args.cache_dir)))
        return 0
    rows = []
    for name in args.cases.split(","):
        with tempfile.TemporaryDirectory() as cache_dir:
            pair = []
            for _ in ("cold", "cached"):
                proc = subprocess.run([sys.executable, __file__, "--one", name, "--cache-dir",
                                       cache_dir], capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    pair.append(None)
                    break
                pair.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            rows.append((name, pair))
            print(name, json.dumps(pair), flush=True)
    lines = ["# Compile benchmark", "",
             f"Command: `.venv/bin/python bench/compile_bench.py --cases {args.cases}`", "",
             "Each cell is a fresh subprocess: build + lower the circuit, then "
             "`passes.compile_model` with the default pipeline; *cold* starts from an empty "
             "layout cache, *cached* is a second process that finds the entry. Peak = "
             "ru_maxrss of the whole process (model included); 'model MB' is ru_maxrss "
             "after building the model. 'sum weights' counts every sum weight stored "
             "(PyJuice's edge count of hclt-512 is ~119M plus the root).", "",
             "Circuits come from pccompiler.structures with float32 parameters: HCLT over a "
             "random spanning tree of 784 variables (networkx random_labeled_tree, seed 0; "
             "the tree's shape, not how it is learned, drives compile time), 256 categories; "
             "PD 28x28 with split_intervals=7; RAT-SPN 784 vars, depth 6, 8 repetitions; "
             "homogeneous HMM, length 32, 4096 emissions.", "",
             f"Machine: {os.cpu_count()} CPU cores; compile runs on one core.", "",
             "| case | groups | sum weights | build s | cold compile s | cached compile s "
             "| model MB | peak MB cold | peak MB cached | slowest passes (cold) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, pair in rows:
        if not pair or pair[0] is None or len(pair) < 2 or pair[1] is None:
            lines.append(f"| {name} | failed | | | | | | | | |")
            continue
        cold, hot = pair
        slow = sorted(cold["passes"].items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"| {name} | {cold['groups']} | {cold['weights'] / 1e6:.1f}M | "
                     f"{cold['build_s']:.1f} | {cold['compile_s']:.2f} | {hot['compile_s']:.2f}"
                     f"{'' if hot['hit'] else ' (miss!)'} | {cold['rss_after_build_mb']:.0f} | "
                     f"{cold['peak_rss_mb']:.0f} | {hot['peak_rss_mb']:.0f} | "
                     + ", ".join(f"{k} {v:.2f}" for k, v in slow) + " |")
    lines += ["", "Targets (issue 4): hclt-512 (~119M PyJuice edges) compiles cold in < 10 s, "
              "from the cache in < 1 s, with peak memory < 8 GB. Cold time is dominated by "
              "`verify` (ir.check over every weight); a cache hit runs no pass: it hashes the "
              "structure and rebuilds model' from the caller's tensors."]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
