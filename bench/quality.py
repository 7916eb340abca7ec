"""Density-estimation quality: HCLT + EM on DEBD sets vs the published HCLT.

    .venv/bin/python bench/quality.py [--sets nltcs,plants,...] [--latents 32]

For every set: an HCLT (Chow-Liu tree from the training split), mini-batch
EM with a step size annealed linearly (PyJuice-style), then full-batch EM;
the parameters with the best validation LL are kept and evaluated on the
test split. `--soften BETA` trains on softened data (pccompiler.training.
Softening; the published figures used it, see results/quality_softening.md).
Results (test LL next to the published HCLT figure of ../shared/REFERENCES.md;
target: within 0.3 nats) are written after every set to
bench/results/quality.md with the command that produced them.
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
    from pccompiler.training import evaluate, train_em
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
    if pending:
        lines += ["", f"Not finished (yet): {', '.join(pending)}."]
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=DEFAULT_SETS)
    p.add_argument("--latents", type=int, default=32)
    p.add_argument("--mini-epochs", type=int, default=30)
    p.add_argument("--full-epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--step-size", type=float, default=0.1)
    p.add_argument("--step-size-end", type=float, default=0.01)
    p.add_argument("--pseudocount", type=float, default=0.1)
    p.add_argument("--soften", type=float, default=None, metavar="BETA",
                   help="train on softened data (soft evidence, keep-probability BETA, e.g. "
                        "0.999; default: off); LLs are evaluated without softening")
    p.add_argument("--soften-kernel", choices=["uniform", "marginal"], default="uniform",
                   help="where the softened mass goes: evenly to the other categories, or "
                        "by the training marginals (our reading of the paper's code)")
    p.add_argument("--backend", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "quality.md"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    rows: list[dict] = []
    for i, name in enumerate(sets):
        rows.append(run_set(name, args))
        r = rows[-1]
        print(f"{name}: test LL {r['test']:.3f} (published {r['published']}) "
              f"in {r['seconds']:.0f}s", flush=True)
        write(rows, args, args.out, sets[i + 1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
