"""Accuracy of precision="bf16" (sum-layer dots with bf16 operands, fp32
accumulation) against the float64 reference, beside "ieee" and "tf32".

  evaluation  per-sample log-likelihood of every precision (triton) against
              the torch backend in float64, on real data: nltcs test (HCLT
              32 latents, structure from nltcs train, random parameters, and
              the same after training) and the first 1000 MNIST test images
              (bench/data/mnist_test_first1000.npz; the race's hclt32 tree
              and parameters): max and mean |difference| in nats
  EM          --epochs of mini-batch EM (batch 512, step 0.5, pseudocount
              0.1) on nltcs train from the same initial parameters, with
              tf32 and with bf16; the final test log-likelihood of each
              (evaluated in float64); target |bf16 - tf32| <= 0.01 nats

    PYTHONPATH=.:bench python bench/bf16_accuracy.py --epochs 5
Writes bf16_accuracy-<gpu>-<date>.md / .json to --out-dir and $OUT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pccompiler as pc  # noqa: E402
from pccompiler.data.debd import load_debd  # noqa: E402

PRECISIONS = ("ieee", "tf32", "bf16")
STEP, PSEUDOCOUNT, BATCH = 0.5, 0.1, 512


def float64_ll(model, x: np.ndarray) -> np.ndarray:
    ref = pc.compile(model, backend="torch", device="cpu", dtype="float64", check=False)
    with torch.no_grad():
        return ref.log_prob(x).double().numpy()


def triton_ll(model, x: np.ndarray, precision: str, device: str) -> np.ndarray:
    cc = pc.compile(model, backend="triton", device=device, precision=precision, check=False)
    with torch.no_grad():
        return np.concatenate([cc.log_prob(x[i:i + BATCH]).double().cpu().numpy()
                               for i in range(0, len(x), BATCH)])


def evaluation(name: str, model, x: np.ndarray, device: str) -> list[dict]:
    want = float64_ll(model, x)
    rows = []
    for precision in PRECISIONS:
        got = triton_ll(model, x, precision, device)
        diff = np.abs(got - want)
        rows.append({"data": name, "precision": precision, "samples": len(x),
                     "mean_ll_float64": float(want.mean()), "max_abs": float(diff.max()),
                     "mean_abs": float(diff.mean()),
                     "mean_ll_diff": float(got.mean() - want.mean())})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def train(model, train_x: np.ndarray, precision: str, epochs: int, device: str):
    cc = pc.compile(model, backend="triton", device=device, precision=precision, check=False)
    rng = np.random.default_rng(0)
    xt = torch.as_tensor(train_x, device=device)
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(train_x)), device=device)
        for i in range(0, len(order) - BATCH + 1, BATCH):
            cc.em_step(xt[order[i:i + BATCH]], step_size=STEP, pseudocount=PSEUDOCOUNT)
    return cc.to_model()


def markdown(env: dict, evals: list[dict], em: dict) -> str:
    lines = [f"# precision=\"bf16\" accuracy: {env['gpu']}", "", f"`{env['command']}`", "",
             f"{env['gpu']}, torch {env['torch']}, pccompiler {env['pccompiler']}, {env['date']}. "
             "Per-sample log-likelihood (nats) of the triton backend against the torch "
             "backend in float64.", "",
             "| data | precision | samples | mean ll (float64) | max abs diff | mean abs diff "
             "| mean ll diff |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in evals:
        lines.append(f"| {r['data']} | {r['precision']} | {r['samples']} | "
                     f"{r['mean_ll_float64']:.4f} | {r['max_abs']:.2e} | {r['mean_abs']:.2e} | "
                     f"{r['mean_ll_diff']:+.2e} |")
    lines += ["", f"EM on nltcs ({em['epochs']} epochs of mini-batch EM, batch {BATCH}, step "
              f"{STEP}, pseudocount {PSEUDOCOUNT}, same initial parameters and batch order), "
              "test log-likelihood in float64:", "",
              "| precision | test ll |", "|---|---:|"]
    for p in ("tf32", "bf16"):
        lines.append(f"| {p} | {em[p]:.4f} |")
    lines += ["", f"|bf16 - tf32| = {abs(em['bf16'] - em['tf32']):.4f} nats (target <= 0.01)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--latents", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, default=None,
                    help="cap every data split at this many rows (a CPU smoke run)")
    ap.add_argument("--no-mnist", dest="mnist", action="store_false",
                    help="skip MNIST (784 variables: minutes under the interpreter)")
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bf16_accuracy: needs a CUDA GPU (or --device cpu under TRITON_INTERPRET=1)",
              file=sys.stderr)
        return 2
    import race_cases
    tr, te = load_debd("nltcs", "train")[:args.rows], load_debd("nltcs", "test")[:args.rows]
    nltcs = pc.lower(pc.hclt(tr, num_latents=args.latents, num_cats=2, seed=0))
    evals = evaluation("nltcs (init)", nltcs, te, args.device)
    em = {"epochs": args.epochs}
    trained = {}
    for precision in ("tf32", "bf16"):
        trained[precision] = train(nltcs, tr, precision, args.epochs, args.device)
        em[precision] = float(float64_ll(trained[precision], te).mean())
        print(f"EM {precision}: test ll {em[precision]:.4f}", flush=True)
    evals += evaluation("nltcs (trained, tf32)", trained["tf32"], te, args.device)
    if args.mnist:
        mnist = np.load(HERE / "data" / "mnist_test_first1000.npz")["images"][:args.rows]
        evals += evaluation(f"MNIST test[:{len(mnist)}] (hclt32)",
                            race_cases.case_for("hclt", 32).build(), mnist, args.device)
    env = {"gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
           "torch": torch.__version__,
           "pccompiler": pc.__version__ + (f" ({os.environ['PCC_COMMIT']})"
                                           if os.environ.get("PCC_COMMIT") else ""),
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bf16_accuracy-{env['gpu'].lower().replace(' ', '-')}-{dt.date.today().isoformat()}"
    md = markdown(env, evals, em)
    (out_dir / f"{stem}.md").write_text(md)
    (out_dir / f"{stem}.json").write_text(json.dumps({"env": env, "eval": evals, "em": em},
                                                     indent=1))
    if os.environ.get("OUT") and Path(os.environ["OUT"]).resolve() != out_dir.resolve():
        for suffix in (".md", ".json"):
            shutil.copy(out_dir / f"{stem}{suffix}", Path(os.environ["OUT"]) / f"{stem}{suffix}")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
