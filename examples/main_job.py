"""The main job (`make main`): build, compile, train, evaluate, save, dump.

    python examples/main_job.py [--latents 32] [--out build/main]

1. an HCLT (Chow-Liu tree over the training data) on the shipped nltcs set;
2. compile it (triton on a GPU when available, torch on the CPU);
3. train with EM: mini-batch EM with an annealed step size, then full-batch EM;
4. report the test log-likelihood next to the published HCLT figure
   (-6.00 nats, Liu & Van den Broeck 2021; ../shared/REFERENCES.md);
5. save the trained circuit as a .pcc, load it back (no pass runs) and
   check it gives the same test LL, and print its dump.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

PUBLISHED_HCLT_NLTCS = -6.00


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/main_job.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latents", type=int, default=32)
    parser.add_argument("--mini-epochs", type=int, default=15)
    parser.add_argument("--full-epochs", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: this circuit is small, and idle "
                             "OpenMP threads spinning on a busy 2-core machine cost more than "
                             "they give)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", default=os.path.join("build", "main"))
    parser.add_argument("--backend", default=None)
    args = parser.parse_args(argv)

    import torch

    import pccompiler as pc
    from pccompiler.data import load_debd
    from pccompiler.driver import default_backend
    from pccompiler.train import evaluate, train_em

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train, valid, test = (load_debd("nltcs", s).astype("int64") for s in ("train", "valid", "test"))
    print(f"[1] nltcs: train {train.shape}, valid {valid.shape}, test {test.shape}")
    root = pc.hclt(train, num_latents=args.latents, num_cats=2, seed=0)
    model = pc.lower(root, name="hclt-nltcs")
    print(f"[1] HCLT latents {args.latents}: {len(model.groups)} groups")

    backend = args.backend or default_backend()
    t = time.perf_counter()
    circuit = pc.compile(model, backend=backend)
    print(f"[2] compiled for {circuit.backend_name} on {circuit.device} in "
          f"{time.perf_counter() - t:.2f}s ({circuit.layout.num_sum_params} sum params, "
          f"{len(circuit.layout.layers)} layers)")

    print("[3] mini-batch EM (step 0.1 -> 0.01, pseudocount 0.1)")
    train_em(circuit, train, valid, epochs=args.mini_epochs, batch_size=args.batch_size,
             em="mini", step_size=0.1, step_size_end=0.01, pseudocount=0.1, log=print)
    print("[3] full-batch EM (pseudocount 0.1)")
    train_em(circuit, train, valid, epochs=args.full_epochs, batch_size=4096, em="full",
             step_size=1.0, pseudocount=0.1, log=print)

    test_ll = evaluate(circuit, test)
    print(f"[4] test LL {test_ll:.4f} nats  (published HCLT: {PUBLISHED_HCLT_NLTCS:.2f}; "
          f"difference {test_ll - PUBLISHED_HCLT_NLTCS:+.3f})")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "hclt_nltcs.pcc")
    circuit.save(path)
    loaded = pc.load(path)
    reloaded_ll = evaluate(loaded, test)
    print(f"[5] saved {path} ({os.path.getsize(path)} bytes); reloaded test LL {reloaded_ll:.4f}")
    if abs(reloaded_ll - test_ll) > 1e-4:
        print("error: the reloaded circuit disagrees with the trained one", file=sys.stderr)
        return 1
    _dump(path)
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


def _dump(path: str, max_groups: int = 12) -> None:
    """Print the manifest and the text dump of the saved Model and Layout."""
    import json
    from pccompiler.ir.artifact import read_pcc
    art = read_pcc(path)
    print(f"[5] {path} manifest:\n{json.dumps(art.manifest, indent=2, sort_keys=True)}")
    from pccompiler.tools.dump import dump_message
    print(dump_message(art.model, max_groups=max_groups))
    text = dump_message(art.layout).splitlines()
    print("\n".join(text[:40] + ([f"... ({len(text) - 40} more lines)"] if len(text) > 40 else [])))


if __name__ == "__main__":
    sys.exit(main())
