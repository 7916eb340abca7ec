"""`pcc eval`: average log-likelihood and bits per dimension of a data set."""

from __future__ import annotations

import math

from pccompiler.cli.data_args import (DATA_EPILOG, HelpFormatter, add_data_format_arguments,
                                      add_dataset_argument, data_format_from_args)
from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Evaluate a circuit (.pcir or .pcc) on a data file (--data) or a split of a
named data set (--dataset NAME --split test): prints the average
log-likelihood in nats per sample and in bits per dimension
(-LL / (num_vars * ln 2)).

--missing reads empty cells (`1,,0`) and `?` cells as missing values and
prints the marginal log-likelihood: log p(observed cells), the missing
variables summed out (docs/queries.md).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="log-likelihood of a data set", description=DESCRIPTION,
                              epilog=DATA_EPILOG, formatter_class=HelpFormatter)
    add_circuit_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data file (required unless --dataset)")
    add_dataset_argument(source)
    p.add_argument("--split", default="test",
                   help="the --dataset split: train, valid or test (mnist: train or test)")
    add_data_format_arguments(p)
    p.add_argument("--missing", action="store_true",
                   help="empty and '?' cells of --data are missing values: print the marginal "
                        "LL (off: every cell must hold a value)")
    p.add_argument("--batch-size", type=int, default=1024, help="samples per forward pass")
    p.set_defaults(func=run)


def run(args) -> int:
    from pccompiler.cli.paths import check_positive
    check_positive("--batch-size", args.batch_size)
    from pccompiler.driver import open_circuit
    from pccompiler.train import evaluate, load_data, load_dataset
    fmt = data_format_from_args(args)
    if args.missing and args.data is None:
        from pccompiler.errors import DataError
        raise DataError("--missing reads the empty cells of a --data file; a --dataset has none")
    circuit = open_circuit(args.file, args.backend, args.device)
    if args.missing:
        return _eval_missing(circuit, args, fmt)
    if args.data is not None:
        data, name = load_data(args.data, circuit.model, fmt), args.data
    else:
        data, name = load_dataset(args.dataset, args.split, circuit.model), \
            f"{args.dataset} ({args.split})"
    ll = evaluate(circuit, data, args.batch_size)
    bpd = -ll / (circuit.num_vars * math.log(2))
    print(f"{name}: {len(data)} samples  LL {ll:.4f} nats  {bpd:.4f} bits/dim")
    return 0


def _eval_missing(circuit, args, fmt) -> int:
    """Marginal LL of the rows of --data, their empty and `?` cells summed out."""
    from pccompiler.train import evaluate
    from pccompiler.train.data import load_data_missing
    data, missing = load_data_missing(args.data, circuit.model, fmt)
    ll = evaluate(circuit, data, args.batch_size, missing)
    print(f"{args.data}: {len(data)} samples, {int(missing.sum())} of {missing.size} values "
          f"missing  marginal LL {ll:.4f} nats")
    return 0
