"""Does one prune-grow round beat more EM on the dense circuit? (issue #18,
a CPU check at small scale before a GPU run.)

    PCC_DATA_DIR=/work/shared/data .venv/bin/python bench/prune_grow_check.py \
        --dataset mnist --limit 3000 --latents 16 --extra-epochs 20 --noise 0,0.1 \
        --out bench/results/prune_grow_check.json

1. Trains an HCLT (torch backend, CPU) with mini-batch EM at a constant
   `--step` until the validation LL has not improved by `--tol` for
   `--patience` epochs (at most `--dense-max-epochs`).
2. From that trained circuit, for the same `--extra-epochs` of EM:
   (a) "dense": the dense circuit trained on, the step size annealed from
       `--ft-step-start` to `--ft-step-end`;
   (b) per `--noise`: `--rounds` rounds of prune(`--keep`) -> grow
       (`--factor`) -> recompile -> extra_epochs / rounds epochs of the same
       schedule. Every round also records the test LL right after pruning,
       after growing with noise 0 (must equal the pruned LL), after growing
       with the noise, and how far the grown copies of every input node
       moved apart during fine-tuning (mean total variation between copy 0
       and copy 1 of a categorical leaf, against that between two distinct
       leaves of the group: 0 = the copies stayed identical).
Test LL in nats per sample (and bpd for MNIST) after every epoch; one JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def load(args) -> dict[str, np.ndarray]:
    """{"train", "valid", "test"} uint8 rows; MNIST: bench/mnist_common's split."""
    if args.dataset == "mnist":
        from mnist_common import mnist_split
        split = mnist_split()
    else:
        from pccompiler.data.debd import load_debd
        split = {s: load_debd(args.dataset, s) for s in ("train", "valid", "test")}
    lim = {"train": args.limit, "valid": args.eval_limit, "test": args.eval_limit}
    return {k: np.ascontiguousarray(v[:lim[k]] if lim[k] else v) for k, v in split.items()}


def build(args, train: np.ndarray):
    """The HCLT Model (MNIST: the shipped Chow-Liu tree, 256 categories)."""
    import pccompiler as pc
    if args.dataset == "mnist":
        from mnist_common import hclt_tree
        root = pc.hclt(None, args.latents, num_cats=256, tree=hclt_tree(train, []),
                       seed=args.seed)
    else:
        root = pc.hclt(train, args.latents, num_cats=2, seed=args.seed)
    return pc.lower(root)


DTYPE = {"value": "float32"}


def compile_torch(model):
    """Torch on the CPU, no permutation search (the GPU driver's recompile);
    `--dtype float64`: the torch engine's float32 flows of a pruned circuit
    overflow to NaN (its per-block max includes zero-weight pseudo-edges)."""
    import pccompiler as pc
    return pc.compile(model, backend="torch", device="cpu", dtype=DTYPE["value"],
                      pass_options={"detect-block-sparsity": {"permute": False}})


def test_ll(circuit, data) -> float:
    from pccompiler.train.em import evaluate
    return evaluate(circuit, data["test"])


def train_dense(circuit, data, args, log) -> list[dict]:
    """Constant-step EM until the validation LL stalls (module docstring, 1)."""
    from pccompiler.train.em import evaluate, train_em
    best, stale, curve = -math.inf, 0, []
    for epoch in range(1, args.dense_max_epochs + 1):
        train_em(circuit, data["train"], epochs=1, batch_size=args.batch,
                 step_size=args.step, pseudocount=args.pseudocount, seed=args.seed + epoch)
        valid = evaluate(circuit, data["valid"])
        curve.append({"epoch": epoch, "valid_ll": valid})
        log(f"dense epoch {epoch:3d}  valid LL {valid:.4f}")
        if valid > best + args.tol:
            best, stale = valid, 0
        else:
            stale += 1
            if stale >= args.patience:
                break
    return curve


def fine_tune(circuit, data, args, epochs: int, first_epoch: int, total: int, label, log):
    """`epochs` epochs of EM, the step annealed linearly over the whole
    extra budget `total` (so rounds continue one schedule); test LL per epoch."""
    from pccompiler.train.em import evaluate, train_em
    out = []
    span = args.ft_step_end - args.ft_step_start
    for e in range(first_epoch, first_epoch + epochs):
        step = args.ft_step_start + span * (e - 1) / max(total - 1, 1)
        train_em(circuit, data["train"], epochs=1, batch_size=args.batch, step_size=step,
                 pseudocount=args.pseudocount, seed=args.seed + 1000 + e)
        row = {"epoch": e, "step": step, "test_ll": test_ll(circuit, data),
               "valid_ll": evaluate(circuit, data["valid"])}
        out.append(row)
        log(f"{label} epoch {e:3d}  step {step:.3f}  valid {row['valid_ll']:.4f}  "
            f"test {row['test_ll']:.4f}")
    return out


def copy_spread(model, factor: int) -> float | None:
    """Mean TV distance between copy 0 and copy 1 of each categorical leaf,
    over that between leaf i and leaf i+1 of copy 0 (module docstring)."""
    from pccompiler import ir
    from pccompiler.ir import pcir
    table = ir.tensor_table(model)
    copies, others = [], []
    for g in model.groups:
        if g.kind != pcir.INPUT or g.input.dist != pcir.CATEGORICAL_DIST:
            continue
        p = np.asarray(table[g.input.params], np.float64)
        n = len(p) // factor
        if n < 2:
            continue
        copies.append(0.5 * np.abs(p[:n] - p[n:2 * n]).sum(1).mean())
        others.append(0.5 * np.abs(p[:n] - np.roll(p[:n], 1, axis=0)).sum(1).mean())
    return float(np.mean(copies) / max(np.mean(others), 1e-12)) if copies else None


def pruned_flow(circuit, train: np.ndarray, keep: float) -> float:
    """Flow per sample of the edges outside the global top `keep` fraction
    (what `prune_edges` step 1 drops; its kept best edge per node ignored,
    so an upper bound). Theorem 2 of the paper bounds the train LL drop by
    about this when it is small."""
    from pccompiler.train.prune_grow import edge_flows
    from pccompiler import ir
    model = circuit.to_model()
    table = ir.tensor_table(model)
    flows = edge_flows(circuit, train)
    weights = {g.id: np.asarray(table[ir.param_tensor_name(model, g)]).reshape(-1)
               for g in model.groups if g.id in flows}
    f = np.concatenate([flows[g].reshape(-1)[weights[g] != 0] for g in flows])
    k = math.ceil(keep * len(f))
    return float(np.sort(f)[::-1][k:].sum() / len(train))


def prune_grow_run(trained, data, args, noise: float, log) -> dict:
    """Rounds of prune -> grow -> fine-tune from the trained Model (2b)."""
    from pccompiler.train.em import evaluate
    from pccompiler.train.prune_grow import grow, prune, sum_edge_count
    circuit = compile_torch(trained)
    per_round = args.extra_epochs // args.rounds
    rounds, epoch = [], 1
    for r in range(1, args.rounds + 1):
        t = time.perf_counter()
        row = {"round": r, "edges_before": sum_edge_count(circuit.to_model()),
               "ll_before": test_ll(circuit, data)}
        row["pruned_flow"] = pruned_flow(circuit, data["train"], args.keep)
        row["train_ll_before"] = evaluate(circuit, data["train"])
        pruned = prune(circuit, data["train"], args.keep)
        row["edges_pruned"] = sum_edge_count(pruned)
        pruned_circuit = compile_torch(pruned)
        row["ll_pruned"] = test_ll(pruned_circuit, data)
        row["train_ll_pruned"] = evaluate(pruned_circuit, data["train"])
        row["ll_grown_noise0"] = test_ll(compile_torch(grow(pruned, args.factor, 0.0)), data)
        grown = grow(pruned, args.factor, noise, args.seed + r)
        row["edges_grown"] = sum_edge_count(grown)
        circuit = compile_torch(grown)
        row["ll_grown"] = test_ll(circuit, data)
        row["structure_s"] = time.perf_counter() - t
        log(f"noise {noise} round {r}: edges {row['edges_before']} -> {row['edges_pruned']} -> "
            f"{row['edges_grown']}; test LL {row['ll_before']:.4f} -> pruned "
            f"{row['ll_pruned']:.4f} -> grown(0) {row['ll_grown_noise0']:.4f} -> grown "
            f"{row['ll_grown']:.4f}; train LL drop {row['train_ll_before'] - row['train_ll_pruned']:.4f}"
            f" (pruned flow {row['pruned_flow']:.4f} per sample)")
        t = time.perf_counter()
        row["curve"] = fine_tune(circuit, data, args, per_round, epoch, args.extra_epochs,
                                 f"pg noise {noise} r{r}", log)
        row["train_s"] = time.perf_counter() - t
        row["copy_spread"] = copy_spread(circuit.to_model(), args.factor)
        row["ll_tuned"] = row["curve"][-1]["test_ll"]
        epoch += per_round
        rounds.append(row)
    return {"noise": noise, "rounds": rounds}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", help="mnist or a DEBD name (nltcs, plants...)")
    p.add_argument("--limit", type=int, default=3000, help="training rows")
    p.add_argument("--eval-limit", type=int, default=2000, help="valid and test rows")
    p.add_argument("--latents", type=int, default=16)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--pseudocount", type=float, default=0.1)
    p.add_argument("--step", type=float, default=0.5, help="dense phase's constant step")
    p.add_argument("--dense-max-epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--tol", type=float, default=0.01, help="valid LL gain that counts")
    p.add_argument("--extra-epochs", type=int, default=20)
    p.add_argument("--ft-step-start", type=float, default=0.3)
    p.add_argument("--ft-step-end", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--keep", type=float, default=0.25)
    p.add_argument("--factor", type=int, default=2)
    p.add_argument("--noise", default="0,0.1", help="comma-separated grow noises")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--out", required=True, help="results JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import torch
    args = parse_args(argv)
    DTYPE["value"] = args.dtype
    torch.manual_seed(args.seed)
    log = lambda s: print(s, flush=True)  # noqa: E731
    data = load(args)
    log(f"{args.dataset}: train {data['train'].shape}, valid {len(data['valid'])}, "
        f"test {len(data['test'])}; load {os.getloadavg()[0]:.2f}")
    from pccompiler.train.prune_grow import sum_edge_count
    t = time.perf_counter()
    circuit = compile_torch(build(args, data["train"]))
    dense_curve = train_dense(circuit, data, args, log)
    trained = circuit.to_model()
    res = {"args": vars(args), "num_vars": int(data["train"].shape[1]),
           "dense_edges": sum_edge_count(trained), "dense_epochs": len(dense_curve),
           "dense_s": time.perf_counter() - t, "dense_curve": dense_curve,
           "dense_test_ll": test_ll(circuit, data), "load": os.getloadavg()}
    log(f"dense: {res['dense_edges']} edges, {len(dense_curve)} epochs, test LL "
        f"{res['dense_test_ll']:.4f}")
    t = time.perf_counter()
    res["continued"] = fine_tune(compile_torch(trained), data, args, args.extra_epochs, 1,
                                 args.extra_epochs, "dense", log)
    res["continued_s"] = time.perf_counter() - t
    res["prune_grow"] = [prune_grow_run(trained, data, args, float(n), log)
                         for n in args.noise.split(",")]
    res["load_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
