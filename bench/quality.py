"""Density-estimation quality: HCLT + EM on DEBD sets vs the published HCLT.

    .venv/bin/python bench/quality.py [--sets nltcs,plants,...] [--latents 32]

For every set: an HCLT (Chow-Liu tree from the training split), mini-batch
EM with a step size annealed linearly (PyJuice-style), then full-batch EM;
the parameters with the best validation LL are kept and evaluated on the
test split. `--soften BETA` trains on softened data (pccompiler.train.
Softening; the published figures used it, see results/quality_softening.md).
Results (test LL next to the published HCLT figure of ../shared/REFERENCES.md;
target: within 0.3 nats) are written after every set to
bench/results/quality.md with the command that produced them.

`--protocol paper` follows the authors' released code (UCLA-StarAI/
Tractable-PC-Regularization, "non-deterministic PCs/main.jl"), which produced
the published figures:

    .venv/bin/python bench/quality.py --protocol paper --sets dna --seeds 1-5

a mixture of 4 HCLTs (12 latents each) over the trees at ranks 1, 7, 14, 20
of the top-20 maximum spanning trees of the pairwise MI (pseudocount 0.1);
Juice's uniform init with perturbation 0.4; training data softened (0.998,
marginal kernel); pseudocount 0.1; 100 epochs of mini-batch EM (batch 1024,
an update per batch, step size constant within an epoch and annealed
linearly over the epochs from 0.9 to 0.1: Juice blends new = f * old +
(1 - f) * estimate with its `exp_update_factor` f going 0.1 -> 0.9), then 100
epochs of full-batch EM, each phase stopped early once the validation LL
fell on more than 3 consecutive epochs; the figure is the test LL after the
last epoch, averaged over seeds 1..5. Written to
bench/results/quality_paper.md after every seed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
# Published HCLT test LL (nats/sample): Liu & Van den Broeck, NeurIPS 2021,
# as tabulated in ../shared/REFERENCES.md.
PUBLISHED = {"nltcs": -6.00, "msnbc": -6.06, "kdd": -2.18, "plants": -14.26, "baudio": -39.77,
             "jester": -52.46, "bnetflix": -56.28, "accidents": -26.74, "tretail": -10.87,
             "pumsb_star": -23.65, "dna": -79.06, "kosarek": -10.67, "msweb": -9.99,
             "book": -33.83, "tmovie": -50.82, "cwebkb": -152.77, "cr52": -86.26,
             "c20ng": -153.40, "bbc": -251.05, "ad": -16.07}
DEFAULT_SETS = "nltcs,plants,baudio,jester,bnetflix,accidents,dna"


def run_set(name: str, args) -> dict:
    import pccompiler as pc
    from pccompiler.data import load_debd
    from pccompiler.train import evaluate, train_em
    train, valid, test = (load_debd(name, s).astype("int64") for s in ("train", "valid", "test"))
    t0 = time.perf_counter()
    model = pc.lower(pc.hclt(train, num_latents=args.latents, num_cats=2, seed=0))
    circuit = pc.compile(model, backend=args.backend, device=args.device)
    best = {"valid": -float("inf"), "params": None}

    def keep_best(line: str) -> None:
        ll = evaluate(circuit, valid, 4096)
        print(f"  {name}: {line}  valid LL {ll:.4f}", flush=True)
        if ll > best["valid"]:
            best["valid"] = ll
            best["params"] = (circuit.sum_params.detach().clone(),
                              circuit.input_params.detach().clone())

    train_em(circuit, train, None, epochs=args.mini_epochs, batch_size=args.batch_size, em="mini",
             step_size=args.step_size, step_size_end=args.step_size_end,
             pseudocount=args.pseudocount, log=keep_best, soften=args.soften,
             soften_kernel=args.soften_kernel)
    train_em(circuit, train, None, epochs=args.full_epochs, batch_size=4096, em="full",
             step_size=1.0, pseudocount=args.pseudocount, log=keep_best, soften=args.soften,
             soften_kernel=args.soften_kernel)
    with torch.no_grad():
        circuit.sum_params.copy_(best["params"][0])
        circuit.input_params.copy_(best["params"][1])
    row = {"set": name, "vars": train.shape[1], "train": evaluate(circuit, train, 4096),
           "valid": best["valid"], "test": evaluate(circuit, test, 4096),
           "published": PUBLISHED.get(name), "seconds": time.perf_counter() - t0,
           "edges": int(circuit.layout.num_sum_params), "backend": circuit.backend_name,
           "device": str(circuit.device)}
    return row


# ---------------------------------------------------------------- paper protocol
PAPER = dict(latents=12, trees=4, tree_candidates=20, mi_alpha=0.1, init="uniform",
             perturbation=0.4, soften=0.998, soften_kernel="marginal", pseudocount=0.1,
             batch_size=1024, step_size=0.9, step_size_end=0.1, tol=3, mini_epochs=100,
             full_epochs=100, seeds="1-5", entropy_reg=0.0,
             out=os.path.join(HERE, "results", "quality_paper.md"))


def parse_seeds(text: str) -> list[int]:
    """'1-5' or '1,3,4' -> a list of ints."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            out += list(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def run_paper_seed(name: str, seed: int, args, data=None) -> dict:
    """One seed of the paper protocol on one set; returns its row."""
    import pccompiler as pc
    from pccompiler.data import load_debd
    from pccompiler.train import evaluate, train_em
    train, valid, test = data or tuple(load_debd(name, s).astype("int64")
                                       for s in ("train", "valid", "test"))
    t0 = time.perf_counter()
    root = pc.hclt(train, num_latents=args.latents, num_cats=2, seed=seed, alpha=args.mi_alpha,
                   num_trees=args.trees, num_tree_candidates=args.tree_candidates,
                   init=args.init, perturbation=args.perturbation)
    circuit = pc.compile(pc.lower(root), backend=args.backend, device=args.device)
    ev = max(args.batch_size, 4096)
    phases = {}
    for phase, epochs in (("mini", args.mini_epochs), ("full", args.full_epochs)):
        last, falls, done = -float("inf"), 0, 0
        for epoch in range(1, epochs + 1):
            if phase == "mini":
                f = (epoch - 1) / max(1, epochs - 1)
                step = args.step_size + (args.step_size_end - args.step_size) * f
            else:
                step = 1.0
            train_em(circuit, train, None, epochs=1, batch_size=args.batch_size, em=phase,
                     step_size=step, step_size_end=step, pseudocount=args.pseudocount,
                     seed=seed * 100003 + epoch + (0 if phase == "mini" else 50000),
                     soften=args.soften, soften_kernel=args.soften_kernel,
                     entropy_reg=args.entropy_reg)
            done = epoch
            vll = evaluate(circuit, valid, ev)
            if args.verbose:
                print(f"  {name} seed {seed} {phase} {epoch:3d} step {step:.3f} valid {vll:.4f}",
                      flush=True)
            if vll < last:
                falls += 1
                if falls > args.tol:
                    break
            else:
                falls = 0
            last = vll
        phases[phase] = done
    row = {"set": name, "seed": seed, "vars": train.shape[1],
           "train": evaluate(circuit, train, ev), "valid": evaluate(circuit, valid, ev),
           "test": evaluate(circuit, test, ev), "published": PUBLISHED.get(name),
           "seconds": time.perf_counter() - t0, "mini": phases["mini"], "full": phases["full"],
           "edges": int(circuit.layout.num_sum_params), "backend": circuit.backend_name,
           "device": str(circuit.device), "config": config_label(args),
           "command": " ".join(([f"PCC_DATA_DIR={os.environ['PCC_DATA_DIR']}"]
                                 if os.environ.get("PCC_DATA_DIR") else [])
                                + [".venv/bin/python", "bench/quality.py", *sys.argv[1:]])}
    return row


def config_label(args) -> str:
    """The settings that distinguish runs of the paper protocol, in a few words."""
    parts = [f"K={args.latents}", f"{args.trees}/{args.tree_candidates} trees",
             f"soften {args.soften} {args.soften_kernel}" if args.soften else "no softening",
             f"step {args.step_size}->{args.step_size_end}", f"pc {args.pseudocount}"]
    if args.entropy_reg:
        parts.append(f"entropy {args.entropy_reg}")
    if args.init != "uniform":
        parts.append(f"init {args.init}")
    if args.device not in (None, "cpu"):
        parts.append(f"on {args.device}")
    if (args.mini_epochs, args.full_epochs, args.tol) != (100, 100, 3):
        parts.append(f"epochs {args.mini_epochs}+{args.full_epochs} tol {args.tol}")
    return ", ".join(parts)


def load_rows(path: str) -> list[dict]:
    import json
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return json.load(fh)


def write_paper(rows: list[dict], args, path: str, pending: list[str]) -> None:
    """Rewrite the results file (and its .json row store, which `--append`
    runs extend) from every row."""
    import json

    import numpy as np
    with open(path + ".json.tmp", "w") as fh:
        json.dump(rows, fh, indent=1)
    os.replace(path + ".json.tmp", path + ".json")
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines = [
        "# Density estimation quality: the paper protocol (mixture of HCLTs + EM) vs published HCLT",
        "",
        "Commands (numbered; the tables say which produced each row; every row is also in "
        f"{os.path.basename(path)}.json):",
        "",
        *[f"{i + 1}. `{c}`" for i, c in enumerate(commands)],
        "",
        "Protocol (`--protocol paper` defaults; the config column names what a run changed; the "
        "authors' released code, "
        "UCLA-StarAI/Tractable-PC-Regularization@05743c7 'non-deterministic PCs/main.jl', "
        "read, not run): a mixture of 4 HCLTs with 12 latents each, over the trees at ranks "
        "round(linspace(1, 20, 4)) = 1, 7, 14, 20 of the top-20 maximum spanning trees of the "
        "pairwise MI (pseudocount 0.1), each rooted at its graph center, one root sum over all "
        "their root products; Juice's uniform init with perturbation 0.4; training data "
        "softened (beta 0.998, marginal kernel); pseudocount 0.1 (spread over each node's "
        "parameters, as Juice does); no entropy regularisation unless the config says so; "
        "mini-batch EM up to 100 epochs (batch 1024, update per batch, step size constant "
        "per epoch, annealed linearly 0.9 -> 0.1 over the epochs: Juice's exp_update_factor "
        "0.1 -> 0.9 weighs the OLD parameters), then full-batch EM up to 100 epochs; each "
        "phase stops once the validation LL fell on more than 3 consecutive epochs. Reported: "
        "test LL after the last epoch (not the best-validation epoch), mean over the seeds; "
        "spread = (max - min) / 2 and the sample std. Published: Liu & Van den Broeck 2021 "
        "(../shared/REFERENCES.md). Target: within 0.3 nats.",
        "",
        "| set | config | cmd | seeds | test LL mean | ± half-range | std | published | diff | "
        "within 0.3 | valid LL mean | train LL mean | seconds (all seeds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    groups = list(dict.fromkeys((r["set"], r["config"]) for r in rows))
    for name, config in groups:
        rs = [r for r in rows if r["set"] == name and r["config"] == config]
        t = np.array([r["test"] for r in rs])
        pub = rs[0]["published"]
        diff = t.mean() - pub if pub is not None else float("nan")
        std = t.std(ddof=1) if len(t) > 1 else 0.0
        lines.append(
            f"| {name} | {config} | "
            f"{','.join(sorted({str(commands.index(r['command']) + 1) for r in rs}))} | "
            f"{','.join(str(r['seed']) for r in rs)} | "
            f"{t.mean():.3f} | {(t.max() - t.min()) / 2:.3f} | {std:.3f} | {pub:.2f} | "
            f"{diff:+.3f} | {'yes' if diff >= -0.3 else 'no'} | "
            f"{np.mean([r['valid'] for r in rs]):.3f} | {np.mean([r['train'] for r in rs]):.3f} | "
            f"{sum(r['seconds'] for r in rs):.0f} |")
    lines += ["", f"Written on: {platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"CPUs, torch {torch.__version__}. Seconds are wall time of each run's own "
              "machine (the per-seed table names its backend and device).",
              *([""] + args.note if args.note else []),
              "", "Per seed (train LL on the unsoftened training data):", "",
              "| set | config | cmd | seed | backend/device | sum params | mini epochs | "
              "full epochs | train LL | valid LL | test LL | seconds |",
              "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['config']} | {commands.index(r['command']) + 1} | "
                     f"{r['seed']} | {r['backend']}/{r['device']} | {r['edges']} | {r['mini']} | "
                     f"{r['full']} | "
                     f"{r['train']:.3f} | {r['valid']:.3f} | {r['test']:.3f} | "
                     f"{r['seconds']:.0f} |")
    _write_lines(lines, path, pending)


def _write_lines(lines: list[str], path: str, pending: list[str]) -> None:
    """Write a results file atomically, listing the sets not finished yet."""
    if pending:
        lines = lines + ["", f"Not finished (yet): {', '.join(pending)}."]
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def soften_text(args) -> str:
    if args.soften is None:
        return "no data softening"
    return f"data softening beta {args.soften} ({args.soften_kernel} kernel)"


def write(rows: list[dict], args, path: str, pending: list[str]) -> None:
    lines = [
        "# Density estimation quality: HCLT + EM vs published HCLT",
        "",
        "Command: `" + " ".join([".venv/bin/python", "bench/quality.py", *sys.argv[1:]]) + "`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}; backend {rows[0]['backend'] if rows else args.backend}, "
        f"device {rows[0]['device'] if rows else args.device}.",
        f"HCLT latents {args.latents}; mini-batch EM {args.mini_epochs} epochs (batch "
        f"{args.batch_size}, step {args.step_size} -> {args.step_size_end}), then full-batch EM "
        f"{args.full_epochs} epochs; pseudocount {args.pseudocount}; "
        f"{soften_text(args)}; parameters of the best "
        "validation epoch. Published: Liu & Van den Broeck 2021 (../shared/REFERENCES.md). "
        "Target: within 0.3 nats.",
        "",
        "| set | vars | sum params | train LL | valid LL | test LL | published | diff | within 0.3 | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        pub = r["published"]
        diff = r["test"] - pub if pub is not None else float("nan")
        lines.append(f"| {r['set']} | {r['vars']} | {r['edges']} | {r['train']:.3f} | "
                     f"{r['valid']:.3f} | {r['test']:.3f} | {pub:.2f} | {diff:+.3f} | "
                     f"{'yes' if diff >= -0.3 else 'no'} | {r['seconds']:.0f} |")
    _write_lines(lines, path, pending)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", choices=["default", "paper"], default="default",
                   help="default: one HCLT, best-validation parameters; paper: the authors' "
                        "protocol (module docstring); options given explicitly override it")
    p.add_argument("--sets", default=DEFAULT_SETS)
    p.add_argument("--latents", type=int, default=None, help="default 32 (paper: 12)")
    p.add_argument("--mini-epochs", type=int, default=None, help="default 30 (paper: 100)")
    p.add_argument("--full-epochs", type=int, default=None, help="default 20 (paper: 100)")
    p.add_argument("--batch-size", type=int, default=None, help="default 512 (paper: 1024)")
    p.add_argument("--step-size", type=float, default=None, help="default 0.1 (paper: 0.9)")
    p.add_argument("--step-size-end", type=float, default=None,
                   help="default 0.01 (paper: 0.1)")
    p.add_argument("--pseudocount", type=float, default=None, help="default 0.1")
    p.add_argument("--trees", type=int, default=None, help="paper: mixture of 4 HCLTs")
    p.add_argument("--tree-candidates", type=int, default=None,
                   help="paper: picked from the top-20 spanning trees")
    p.add_argument("--mi-alpha", type=float, default=None, help="paper: MI pseudocount 0.1")
    p.add_argument("--init", choices=["pyjuice", "uniform"], default=None,
                   help="paper: uniform (perturbation 0.4)")
    p.add_argument("--perturbation", type=float, default=None)
    p.add_argument("--tol", type=int, default=None,
                   help="paper: early stop after more than 3 consecutive validation falls")
    p.add_argument("--seeds", default=None, help="paper: 1-5")
    p.add_argument("--entropy-reg", type=float, default=None,
                   help="paper protocol: entropy regularisation tau in the M-step (default off)")
    p.add_argument("--verbose", action="store_true", help="paper protocol: a line per epoch")
    p.add_argument("--merge", action="append", default=[], metavar="JSON",
                   help="paper protocol: add the rows of another run's row store (repeatable; "
                        "with --sets '' just rewrite OUT)")
    p.add_argument("--note", action="append", default=[],
                   help="paper protocol: a paragraph to add under the tables (repeatable)")
    p.add_argument("--append", action="store_true",
                   help="paper protocol: keep the rows already in OUT.json (other sets/configs)")
    p.add_argument("--soften", type=float, default=None, metavar="BETA",
                   help="train on softened data (soft evidence, keep-probability BETA, e.g. "
                        "0.999; default: off); LLs are evaluated without softening")
    p.add_argument("--soften-kernel", choices=["uniform", "marginal"], default=None,
                   help="where the softened mass goes: evenly to the other categories, or "
                        "by the training marginals (our reading of the paper's code)")
    p.add_argument("--backend", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default=None,
                   help="default results/quality.md (paper: results/quality_paper.md)")
    args = p.parse_args(argv)
    defaults = PAPER if args.protocol == "paper" else dict(
        latents=32, mini_epochs=30, full_epochs=20, batch_size=512, step_size=0.1,
        step_size_end=0.01, pseudocount=0.1, soften_kernel="uniform",
        out=os.path.join(HERE, "results", "quality.md"))
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    rows: list[dict] = []
    if args.protocol == "paper":
        if args.append:
            rows = load_rows(args.out + ".json")
        for other in args.merge:
            rows += load_rows(other)
        if not sets:
            write_paper(rows, args, args.out, [])
            return 0
        from pccompiler.data import load_debd
        seeds = parse_seeds(args.seeds)
        for i, name in enumerate(sets):
            data = tuple(load_debd(name, s).astype("int64") for s in ("train", "valid", "test"))
            for seed in seeds:
                rows.append(run_paper_seed(name, seed, args, data))
                r = rows[-1]
                print(f"{name} seed {seed}: test LL {r['test']:.3f} (published "
                      f"{r['published']}) after {r['mini']}+{r['full']} epochs in "
                      f"{r['seconds']:.0f}s", flush=True)
                left = [f"{name} seeds {[s for s in seeds if s > seed]}"] if seed != seeds[-1] else []
                write_paper(rows, args, args.out, left + sets[i + 1:])
        return 0
    for i, name in enumerate(sets):
        rows.append(run_set(name, args))
        r = rows[-1]
        print(f"{name}: test LL {r['test']:.3f} (published {r['published']}) "
              f"in {r['seconds']:.0f}s", flush=True)
        write(rows, args, args.out, sets[i + 1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
