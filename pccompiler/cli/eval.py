"""`pcc eval`: average log-likelihood and bits per dimension of a data set."""

from __future__ import annotations

import argparse
import math

from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Evaluate a circuit (.pcir or .pcc) on a data file: prints the average
log-likelihood in nats per sample and in bits per dimension
(-LL / (num_vars * ln 2)).

--missing reads empty cells (`1,,0`) and `?` cells as missing values and
prints the marginal log-likelihood: log p(observed cells), the missing
variables summed out (docs/queries.md).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="log-likelihood of a data set", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_circuit_arguments(p)
    p.add_argument("--data", required=True, help="data file")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--missing", action="store_true",
                   help="empty and '?' cells are missing values: print the marginal LL "
                        "(default: every cell must hold a value)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pccompiler.cli.paths import check_positive
    check_positive("--batch-size", args.batch_size)
    from pccompiler.driver import open_circuit
    from pccompiler.train import evaluate, load_data
    circuit = open_circuit(args.file, args.backend, args.device)
    if args.missing:
        return _eval_missing(circuit, args)
    data = load_data(args.data, circuit.model)
    ll = evaluate(circuit, data, args.batch_size)
    bpd = -ll / (circuit.num_vars * math.log(2))
    print(f"{args.data}: {len(data)} samples  LL {ll:.4f} nats  {bpd:.4f} bits/dim")
    return 0


def _eval_missing(circuit, args) -> int:
    """Marginal LL of the rows of --data, their empty and `?` cells summed out."""
    from pccompiler.train import evaluate
    from pccompiler.train.data import load_data_missing
    data, missing = load_data_missing(args.data, circuit.model)
    ll = evaluate(circuit, data, args.batch_size, missing)
    print(f"{args.data}: {len(data)} samples, {int(missing.sum())} of {missing.size} values "
          f"missing  marginal LL {ll:.4f} nats")
    return 0
