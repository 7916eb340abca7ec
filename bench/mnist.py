"""MNIST density estimation in bits per dimension: HCLT and PD trained by
pccompiler (triton backend), the prune-grow loop, and PyJuice on the same HCLT.

    PYTHONPATH=/tmp/pcc:bench python3 bench/mnist.py --modes hclt,pd,prune-grow,pyjuice \
        --minutes 1.5 --out $OUT
    .venv/bin/python bench/mnist.py --plot $OUT/mnist.json     # the PNG, where matplotlib is

Data (bench/mnist_common.py): train = first 50,000 MNIST train images, valid
= last 10,000, test = the 10,000 test images; 784 variables x 256 categories.
`--train-on train+valid` trains on all 60,000 (the published figures do).
`--full-batch-after E` makes every epoch after the E-th one full-batch EM
update (`--full-batch-step`, default 1.0).

Modes (each trains for at most `--minutes` of training time; evaluation is
not counted; the curve is test bpd after every epoch against training time):
  hclt        HCLT (`--hclt-latents`, shipped Chow-Liu tree of the train
              split), mini-batch EM, batch `--batch`, pseudocount
              `--pseudocount`, step size constant within an epoch and
              annealed linearly from `--step-start` to `--step-end` over
              `--anneal-epochs` epochs (PyJuice's MNIST HCLT example anneals
              0.9 -> 0.1 over 100 epochs with pseudocount 0.1, batch 512).
  pd          the same for a PD (`--pd-latents`, 28x28, split intervals 7).
  prune-grow  the paper's loop, starting from the HCLT this run trained
              (or training one first): `--pg-rounds` rounds of prune to
              `--pg-keep` of the sum edges by flows on the train split, grow
              by `--pg-factor` with `--pg-noise`, recompile, then EM for at
              most `--minutes` / rounds with the step size annealed from
              `--pg-step-start` to `--step-end` over `--pg-epochs` epochs.
              Structure-change time counts as training time. Recompiling
              skips detect-block-sparsity's permutation search unless
              `--pg-permute` (its co-clustering takes minutes of CPU on a
              pruned HCLT of millions of edges).
  pyjuice     the same HCLT Model (same tree, seed and initial parameters)
              through bench/pyjuice_bridge.py in PyJuice 2.6.3, the same
              batches and schedule (MiniBatchEM, step size per epoch); stops
              once its test bpd reaches the HCLT run's final bpd (the "same
              test bpd"), or `--target` without an hclt run, or the minutes.
Both libraries first run one warm-up step that changes nothing (kernel JIT,
autotuning, graph capture: reported as `warmup_s`, not in the curve).

Writes mnist.json and mnist.md (table + command + machine line) into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mnist_common import (Clock, bpd, command_line, hclt_tree, machine_line,  # noqa: E402
                          mnist_split, save_results)

# Published anchors (see the results file for the sources).
HCLT_PUBLISHED_BPD = 1.20
SPARSE_PC_PAPER_BPD = 1.14
MODES = ("hclt", "pd", "prune-grow", "pyjuice")


def parse_phases(text: str) -> list[tuple[float, float, int]]:
    """'0.9:0.1:100,0.1:0.01:100' -> [(from, to, epochs), ...]."""
    phases = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            a, b, n = part.split(":")
            phases.append((float(a), float(b), int(n)))
        except ValueError:
            raise SystemExit(f"--phases: {part!r} is not FROM:TO:EPOCHS (e.g. 0.9:0.1:100)")
        if phases[-1][2] < 1:
            raise SystemExit(f"--phases: {part!r} has fewer than 1 epoch")
    return phases


def epoch_step_size(args, epoch: int, start: float, anneal_epochs: int,
                    phases: str | None = None) -> float:
    """Step size of 1-based `epoch`: linear from `start` to `--step-end`, or
    piecewise linear over `phases` (a --phases string; then the last phase's
    end value)."""
    if phases:
        for a, b, n in parse_phases(phases):
            if epoch <= n:
                return a + (b - a) * (epoch - 1) / max(n - 1, 1)
            epoch -= n
        return b
    frac = min((epoch - 1) / max(anneal_epochs - 1, 1), 1.0)
    return start + (args.step_end - start) * frac


def evaluate_bpd(log_prob, x: torch.Tensor, batch: int = 512) -> float:
    """Test bpd in batches of the training batch size: the triton engine's
    CUDA graphs serve one batch size, and three forwards in a row of
    another size would move them (and the next epoch would capture again)."""
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            total += float(log_prob(x[i:i + batch]).double().sum())
    return bpd(total / len(x))


def build_model(kind: str, args, train: np.ndarray, notes: list[str]):
    import pccompiler as pc
    if kind == "hclt":
        root = pc.hclt(None, args.hclt_latents, num_cats=256, tree=hclt_tree(train, notes),
                       seed=args.seed)
    else:
        root = pc.pd((28, 28), args.pd_latents, split_intervals=7, num_cats=256, seed=args.seed)
    return pc.lower(root)


def compile_ours(model, args, permute: bool = True):
    """`permute=False` turns off detect-block-sparsity's co-clustering search
    (minutes on a large pruned circuit; the groups then stay edge lists or
    the blocks they already form)."""
    import pccompiler as pc
    options = None if permute else {"detect-block-sparsity": {"permute": False}}
    return pc.compile(model, backend=args.backend, device=args.device, pass_options=options)


def edges(circuit) -> int:
    from pccompiler.train.prune_grow import sum_edge_count
    return sum_edge_count(circuit.to_model())


class Trainer:
    """Epochs of mini-batch EM on our circuit under one training clock, the
    curve (training seconds, epoch, test bpd) appended after every epoch."""

    def __init__(self, args, data: dict[str, torch.Tensor], run: dict, clock: Clock):
        self.args, self.data, self.run, self.clock = args, data, run, clock
        self.gen = torch.Generator().manual_seed(args.seed)
        self.epoch = 0

    def warm_up(self, circuit) -> None:
        """One step of step size 0 (JIT, autotune; parameters unchanged)."""
        t = time.perf_counter()
        circuit.em_step(self.data["train"][:self.args.batch], step_size=0.0,
                        pseudocount=self.args.pseudocount)
        circuit.log_prob(self.data["test"][:self.args.batch])
        self.run["warmup_s"] = self.run.get("warmup_s", 0.0) + time.perf_counter() - t

    def full_batch_epoch(self, circuit, step: float) -> None:
        """One full-batch EM update: the flows of every training row (in
        batches of --batch, the size the engine's graphs serve) summed, then
        one update. The last partial batch is left out, as in the
        mini-batch epochs."""
        x, bsz = self.data["train"], self.args.batch
        circuit.zero_flows()
        for b in range(max(1, len(x) // bsz)):   # a split smaller than a batch: one short batch
            circuit.accumulate_flows(x[b * bsz:(b + 1) * bsz])
        circuit.em_update(step_size=step, pseudocount=self.args.pseudocount)

    def train(self, circuit, seconds: float, start: float, anneal_epochs: int,
              label: str = "", phases: str | None = None) -> None:
        """Epochs until `seconds` more training seconds have passed; the step
        size follows `phases` if given, else start -> --step-end."""
        args, x = self.args, self.data["train"]
        n, bsz = len(x), args.batch
        stop_at = self.clock.now() + seconds
        done_here = 0
        self.clock.resume()
        while self.clock.now() < stop_at:
            self.epoch += 1
            done_here += 1
            full = args.full_batch_after is not None and done_here > args.full_batch_after
            if full:
                step = args.full_batch_step
                self.full_batch_epoch(circuit, step)
            else:
                step = epoch_step_size(args, done_here, start, anneal_epochs, phases)
                perm = torch.randperm(n, generator=self.gen).to(x.device)
                for b in range(max(1, n // bsz)):
                    circuit.em_step(x[perm[b * bsz:(b + 1) * bsz]], step_size=step,
                                    pseudocount=args.pseudocount)
                    if self.clock.now() >= stop_at:
                        break
            t = self.clock.pause()
            test = evaluate_bpd(circuit.log_prob, self.data["test"], args.batch)
            point = [round(t, 3), self.epoch, test]
            if "valid" in self.data:     # held out: picks the epoch (selected_by_valid)
                point.append(evaluate_bpd(circuit.log_prob, self.data["valid"], args.batch))
            self.run["curve"].append(point)
            print(f"  {self.run['name']}{label} epoch {self.epoch:3d}  "
                  f"{'full-batch ' if full else ''}step {step:.3f}  "
                  f"train {t:7.1f}s  test {test:.4f} bpd"
                  + (f"  valid {point[3]:.4f}" if len(point) > 3 else ""), flush=True)
            self.clock.resume()
        self.clock.pause()


def new_run(name: str, **fields) -> dict:
    return {"name": name, "curve": [], **fields}


def finish(run: dict, circuit_log_prob, data, target: float | None) -> None:
    run["test_bpd"] = run["curve"][-1][2] if run["curve"] else evaluate_bpd(
        circuit_log_prob, data["test"])
    # with --train-on train+valid the valid rows were trained on: no valid bpd
    run["valid_bpd"] = (evaluate_bpd(circuit_log_prob, data["valid"])
                        if "valid" in data else None)
    run["best_test_bpd"] = min((c[2] for c in run["curve"]), default=run["test_bpd"])
    picked = selected_by_valid(run["curve"])
    run["selected"] = None if picked is None else dict(zip(("train_s", "epoch", "test_bpd",
                                                            "valid_bpd"), picked))
    run["train_s"] = run["curve"][-1][0] if run["curve"] else 0.0
    if target is not None:
        hit = [c for c in run["curve"] if c[2] <= target]
        run["target_bpd"] = target
        run["seconds_to_target"] = hit[0][0] if hit else None


def selected_by_valid(curve: list) -> list | None:
    """The curve point [train s, epoch, test bpd, valid bpd] of the lowest
    valid bpd (the first on a tie), or None where the points have no valid
    bpd. Its test bpd is the honest figure: `best_test_bpd` picks the epoch
    on the test set itself, so it is optimistic."""
    points = [c for c in curve if len(c) > 3]
    return min(points, key=lambda c: c[3]) if points else None


def run_ours(kind: str, args, data, np_train, results) -> object:
    notes: list[str] = []
    run = new_run(kind, notes=notes)
    results["runs"][kind] = run
    t = time.perf_counter()
    model = build_model(kind, args, np_train, notes)
    run["build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    circuit = compile_ours(model, args)
    run["compile_s"] = time.perf_counter() - t
    run["edges"] = edges(circuit)
    print(f"{kind}: {run['edges'] / 1e6:.2f}M sum edges, built {run['build_s']:.1f}s, "
          f"compiled {run['compile_s']:.1f}s", flush=True)
    clock = Clock(args.device)
    trainer = Trainer(args, data, run, clock)
    trainer.warm_up(circuit)
    trainer.train(circuit, args.minutes * 60, args.step_start, args.anneal_epochs,
                  phases=args.phases)
    finish(run, circuit.log_prob, data, args.target)
    print(f"{kind}: test {run['test_bpd']:.4f} bpd after {run['train_s']:.1f}s of training "
          f"({trainer.epoch} epochs)", flush=True)
    run["epochs"] = trainer.epoch
    return circuit


def run_prune_grow(args, data, np_train, results, start_circuit) -> None:
    from pccompiler.train.prune_grow import grow, prune
    run = new_run("prune-grow", rounds=[], notes=[])
    results["runs"]["prune-grow"] = run
    hclt = results["runs"].get("hclt")
    if start_circuit is None or hclt is None:
        run["notes"].append("no hclt run in this invocation: trained an HCLT first")
        start_circuit = run_ours("hclt", args, data, np_train, results)
        hclt = results["runs"]["hclt"]
    run["start"] = {"from": "hclt run", "train_s": hclt["train_s"], "test_bpd": hclt["test_bpd"],
                    "edges": hclt["edges"]}
    run["curve"] = [list(c) for c in hclt["curve"]]
    clock = Clock(args.device)
    clock.total = hclt["train_s"]
    trainer = Trainer(args, data, run, clock)
    trainer.epoch = hclt.get("epochs", 0)
    circuit = start_circuit
    per_round = 60 * (args.pg_minutes if args.pg_minutes is not None
                      else args.minutes / args.pg_rounds)
    for r in range(1, args.pg_rounds + 1):
        clock.resume()
        t = time.perf_counter()
        before = edges(circuit)
        pruned = prune(circuit, data["train"], args.pg_keep)
        grown = grow(pruned, args.pg_factor, args.pg_noise, args.seed + r)
        circuit = compile_ours(grown, args, permute=args.pg_permute)
        structure_s = time.perf_counter() - t
        clock.pause()
        after = edges(circuit)
        trainer.warm_up(circuit)       # JIT of the new shapes: not training time
        trainer.train(circuit, per_round, args.pg_step_start, args.pg_epochs, f" round {r}",
                      phases=args.pg_phases)
        rnd = {"round": r, "edges_before": before, "edges_after": after,
               "structure_s": round(structure_s, 2), "train_s_end": clock.total,
               "test_bpd": run["curve"][-1][2]}
        run["rounds"].append(rnd)
        print(f"prune-grow round {r}: edges {before} -> {after}, structure {structure_s:.1f}s, "
              f"test {rnd['test_bpd']:.4f} bpd at {clock.total:.1f}s", flush=True)
    finish(run, circuit.log_prob, data, SPARSE_PC_PAPER_BPD)
    run["edges"] = edges(circuit)
    run["warmup_s"] = run.get("warmup_s", 0.0)


def run_pyjuice(args, data, np_train, results) -> None:
    import pyjuice as juice
    from pyjuice_bridge import convert
    run = new_run("pyjuice", notes=[])
    results["runs"]["pyjuice"] = run
    hclt = results["runs"].get("hclt")
    target = hclt["test_bpd"] if hclt else args.target
    if args.full_batch_after is not None:
        run["notes"].append("PyJuice runs mini-batch epochs only (no --full-batch-after)")
    run["notes"].append(f"stops at test bpd <= {target:.4f} "
                        f"({'the hclt run' if hclt else '--target'}) or after {args.minutes} min")
    model = build_model("hclt", args, np_train, run["notes"])
    t = time.perf_counter()
    bridge = convert(model)
    pc = juice.compile(bridge.root, verbose=False)
    pc.to(torch.device(args.device))
    run["compile_s"] = time.perf_counter() - t
    run["edges"] = int(pc.num_edges)
    opt = juice.optim.MiniBatchEM(pc, step_size=args.step_start, pseudocount=args.pseudocount)
    x, bsz = data["train"].long(), args.batch
    test = data["test"].long()
    held_out = {"test": test} | ({"valid": data["valid"].long()} if "valid" in data else {})

    def log_prob(rows):
        return pc(rows)[:, 0]

    t = time.perf_counter()
    lls = pc(x[:bsz], record_cudagraph=args.device.startswith("cuda"))
    lls.mean().backward()
    opt.zero_flows()
    with torch.no_grad():
        log_prob(test[:bsz])
    run["warmup_s"] = time.perf_counter() - t
    clock, gen, epoch = Clock(args.device), torch.Generator().manual_seed(args.seed), 0
    seconds = args.minutes * 60
    clock.resume()
    while clock.now() < seconds:
        epoch += 1
        step = epoch_step_size(args, epoch, args.step_start, args.anneal_epochs, args.phases)
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        for b in range(max(1, len(x) // bsz)):   # a split smaller than a batch: one short batch
            lls = pc(x[perm[b * bsz:(b + 1) * bsz]])
            lls.mean().backward()
            opt.step(step_size=step)
            if clock.now() >= seconds:
                break
        t_train = clock.pause()
        test_bpd = evaluate_bpd(log_prob, test, bsz)
        run["curve"].append([round(t_train, 3), epoch, test_bpd])
        print(f"  pyjuice epoch {epoch:3d}  step {step:.3f}  train {t_train:7.1f}s  "
              f"test {test_bpd:.4f} bpd", flush=True)
        if test_bpd <= target:
            break
        clock.resume()
    clock.pause()
    run["epochs"] = epoch
    finish(run, log_prob, held_out, target)


def write_markdown(results: dict, path: Path) -> None:
    a = results["args"]
    lines = [f"# MNIST bits per dimension: pccompiler ({a['backend']}) and PyJuice", "",
             f"Machine: {results['machine']}", "", f"Command: `{results['command']}`", "",
             (f"Split: train = the first {1 - a['hold_out']:.0%} of all 60,000 MNIST train images, "
              f"valid = the last {a['hold_out']:.0%} (--hold-out; it picks the epoch of the "
              "'test bpd at best valid' column), test = the "
              if a.get("train_on") == "train+valid" and a.get("hold_out") else
              "Split: train = all 60,000 MNIST train images (--train-on train+valid: no valid "
              "bpd), test = the " if a.get("train_on") == "train+valid" else
              "Split: train = first 50,000 MNIST train images, valid = last 10,000, test = the ") +
             "10,000 test images" + (f" (first {a['limit']} rows of each: a smoke test)"
                                     if a.get("limit") else "") +
             "; 784 variables x 256 categories. Training time excludes "
             "evaluation and the warm-up step (JIT, autotuning).", "",
             f"Schedule: mini-batch EM, batch {a['batch']}, pseudocount {a['pseudocount']}, step "
             "size constant per epoch, " + (
                 f"piecewise linear over --phases {a['phases']}" if a.get("phases") else
                 f"linear {a['step_start']} -> {a['step_end']} over {a['anneal_epochs']} epochs") + (
                 f", then full-batch EM (step {a['full_batch_step']}) after epoch "
                 f"{a['full_batch_after']}" if a.get("full_batch_after") is not None else "") +
             f", at most {a['minutes']} min of training per run. "
             f"Prune-grow: from the trained HCLT, {a['pg_rounds']} rounds of prune to "
             f"{a['pg_keep']} of the sum edges by flows on the train split, grow x{a['pg_factor']} "
             f"(noise {a['pg_noise']}, block permutation search {'on' if a['pg_permute'] else 'off'}), EM " + (
                 f"piecewise linear over --pg-phases {a['pg_phases']}" if a.get("pg_phases") else
                 f"{a['pg_step_start']} -> {a['step_end']} over {a['pg_epochs']} epochs") +
             (f", {a['pg_minutes']} min per round." if a.get("pg_minutes") is not None else
              f", {a['minutes']} min / {a['pg_rounds']} per round."), "",
             "| run | sum edges | compile s | warm-up s | epochs | train s | test bpd | best test "
             "bpd | valid bpd | test bpd at best valid (s) | target bpd | train s to target |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results["runs"].items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} ||||||||||")
            continue
        tgt = r.get("target_bpd")
        hit = r.get("seconds_to_target")
        valid = "trained on" if r["valid_bpd"] is None else f"{r['valid_bpd']:.4f}"
        pick = r.get("selected")
        picked = "-" if not pick else f"{pick['test_bpd']:.4f} ({pick['train_s']:.0f})"
        lines.append(
            f"| {name} | {r.get('edges', 0) / 1e6:.2f}M | {r.get('compile_s', 0):.1f} | "
            f"{r.get('warmup_s', 0):.1f} | {r.get('epochs', len(r['curve']))} | "
            f"{r['train_s']:.1f} | {r['test_bpd']:.4f} | {r['best_test_bpd']:.4f} | "
            f"{valid} | {picked} | {'' if tgt is None else f'{tgt:.3f}'} | "
            f"{'not reached' if tgt is not None and hit is None else ('' if hit is None else f'{hit:.1f}')} |")
    pg = results["runs"].get("prune-grow")
    if pg and pg.get("rounds"):
        lines += ["", "Prune-grow rounds:", "",
                  "| round | sum edges before -> after | structure s | train s at end | test bpd |",
                  "|---:|---|---:|---:|---:|"]
        lines += [f"| {r['round']} | {r['edges_before']} -> {r['edges_after']} | "
                  f"{r['structure_s']} | {r['train_s_end']:.1f} | {r['test_bpd']:.4f} |"
                  for r in pg["rounds"]]
    notes = [n for r in results["runs"].values() for n in r.get("notes", [])]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in dict.fromkeys(notes)]
    lines += ["", "Published anchors:", "",
              f"- HCLT: {HCLT_PUBLISHED_BPD} bpd on MNIST test. A. Liu, S. Mandt, G. Van den "
              "Broeck, \"Lossless Compression with Probabilistic Circuits\", ICLR 2022 (as "
              "tabulated in ../shared/REFERENCES.md; the ProbabilisticCircuits.jl README quotes "
              "it and says its HCLT example trains in about 5 minutes on a GPU).",
              f"- Sparse PC (prune and grow): {SPARSE_PC_PAPER_BPD} bpd on MNIST. M. Dang, A. "
              "Liu, G. Van den Broeck, \"Sparse Probabilistic Circuits via Pruning and "
              "Growing\", NeurIPS 2022, arXiv 2211.12551, density-estimation table (MNIST "
              "family). Verified from the paper's text (its NeurIPS submission version, "
              "Table 1, \"Density estimation performance on MNIST-family datasets in test "
              "set bpd\": MNIST Sparse PC 1.14, HCLT 1.20, RatSPN 1.67; 5% of the training "
              "set held out for validation; HCLTs of 16-128 latents pruned 75% and grown).", ""]
    path.write_text("\n".join(lines))


def plot(json_path: Path, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = json.loads(json_path.read_text())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results["runs"].items():
        if r.get("curve"):
            t, b = [c[0] for c in r["curve"]], [c[2] for c in r["curve"]]
            label = f"{'PyJuice HCLT' if name == 'pyjuice' else 'pccompiler ' + name}"
            ax.plot(t, b, marker=".", label=label)
    ax.axhline(HCLT_PUBLISHED_BPD, color="gray", ls="--", lw=1, label="HCLT published (1.20)")
    ax.axhline(SPARSE_PC_PAPER_BPD, color="gray", ls=":", lw=1,
               label=f"sparse PC paper ({SPARSE_PC_PAPER_BPD})")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("test bits per dimension")
    ax.set_title(f"MNIST: {results['machine'].split(';')[0]}")
    values = [c[2] for r in results["runs"].values() for c in r.get("curve", [])]
    lo = min(values + [SPARSE_PC_PAPER_BPD])
    hi = max(min(max(values, default=lo), lo + 1.0), HCLT_PUBLISHED_BPD + 0.1)
    ax.set_ylim(lo - 0.02, hi + 0.02)    # the first epochs of a long run may sit above
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"wrote {png}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", default="hclt,pd,prune-grow,pyjuice")
    p.add_argument("--minutes", type=float, default=1.5, help="training minutes per run")
    p.add_argument("--hclt-latents", type=int, default=128)
    p.add_argument("--pd-latents", type=int, default=32)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--pseudocount", type=float, default=0.1)
    p.add_argument("--step-start", type=float, default=0.9)
    p.add_argument("--step-end", type=float, default=0.1)
    p.add_argument("--anneal-epochs", type=int, default=60)
    p.add_argument("--target", type=float, default=HCLT_PUBLISHED_BPD)
    p.add_argument("--phases", default=None, metavar="FROM:TO:EPOCHS,...",
                   help="piecewise-linear step sizes instead of --step-start/--step-end/"
                        "--anneal-epochs, e.g. ProbabilisticCircuits.jl's HCLT schedule "
                        "0.9:0.1:100,0.1:0.01:100,0.01:0.001:100 (step = 1 - param_inertia)")
    p.add_argument("--train-on", choices=("train", "train+valid"), default="train",
                   help="train+valid trains on all 60,000 training images (as published MNIST "
                        "figures do) and reports no valid bpd")
    p.add_argument("--hold-out", type=float, default=0.0, metavar="FRACTION",
                   help="with --train-on train+valid: the last FRACTION of the 60,000 images "
                        "held out as valid (the sparse-PC paper holds out 0.05); each epoch "
                        "then records valid bpd and the table the test bpd at the best one")
    p.add_argument("--full-batch-after", type=int, default=None, metavar="EPOCHS",
                   help="after this many mini-batch epochs, every epoch is one full-batch EM "
                        "update (flows of all training rows, then one step)")
    p.add_argument("--full-batch-step", type=float, default=1.0,
                   help="step size of the full-batch updates (1.0 = plain EM)")
    p.add_argument("--pg-rounds", type=int, default=1)
    p.add_argument("--pg-minutes", type=float, default=None,
                   help="training minutes per prune-grow round (default: --minutes / --pg-rounds; "
                        "a round restarts its step size, so a short round ends under-trained)")
    p.add_argument("--pg-keep", type=float, default=0.25)
    p.add_argument("--pg-factor", type=int, default=2)
    p.add_argument("--pg-noise", type=float, default=0.1)
    p.add_argument("--pg-step-start", type=float, default=0.5)
    p.add_argument("--pg-epochs", type=int, default=20)
    p.add_argument("--pg-phases", default=None, metavar="FROM:TO:EPOCHS,...",
                   help="step-size phases of each prune-grow round (default: linear "
                        "--pg-step-start -> --step-end over --pg-epochs; --phases applies "
                        "to the HCLT / PD / PyJuice runs only)")
    p.add_argument("--pg-permute", action="store_true",
                   help="let detect-block-sparsity search node permutations when recompiling "
                        "(better blocks, but minutes of CPU on a large circuit)")
    p.add_argument("--backend", default="triton")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--limit", type=int, default=None, help="rows per split (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    p.add_argument("--plot", metavar="FROM_JSON", help="only draw the PNG from a results JSON")
    p.add_argument("--png", help="PNG path for --plot (default: next to the JSON)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.plot:
        src = Path(args.plot)
        plot(src, Path(args.png) if args.png else src.with_suffix(".png"))
        return 0
    for text in (args.phases, args.pg_phases):
        if text:
            parse_phases(text)             # a bad string stops here, not after training
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f"unknown mode(s) {bad}; expected some of {list(MODES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = mnist_split(args.limit)
    if args.train_on == "train+valid":
        split["train"] = np.concatenate([split["train"], split.pop("valid")])
    if args.hold_out:
        if args.train_on != "train+valid" or not 0 < args.hold_out < 1:
            raise SystemExit("--hold-out FRACTION (0 < FRACTION < 1) needs --train-on "
                             "train+valid: --train-on train already holds out 10,000 images")
        keep = len(split["train"]) - max(1, round(args.hold_out * len(split["train"])))
        split["valid"] = split["train"][keep:]
        split["train"] = split["train"][:keep]
    data = {k: torch.from_numpy(np.ascontiguousarray(v)).to(args.device)
            for k, v in split.items()}
    results = {"machine": machine_line(), "command": command_line(), "args": vars(args),
               "runs": {}}
    print(results["machine"], flush=True)
    circuits: dict[str, object] = {}
    failed = False
    for mode in modes:
        try:
            if mode in ("hclt", "pd"):
                circuits[mode] = run_ours(mode, args, data, split["train"], results)
            elif mode == "prune-grow":
                run_prune_grow(args, data, split["train"], results, circuits.get("hclt"))
            else:
                run_pyjuice(args, data, split["train"], results)
        except Exception as exc:        # record, go on with the other modes, fail at the end
            failed = True
            traceback.print_exc()
            results["runs"].setdefault(mode, new_run(mode))["error"] = f"{type(exc).__name__}: {exc}"
        circuits.pop("pd", None)
        save_results(results, out, "mnist", write_markdown, args.device)
    print(f"wrote {out / 'mnist.json'} and {out / 'mnist.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
