"""`pcc prune`: keep the sum edges with the largest flows on a data set."""

from __future__ import annotations

from pccompiler.cli.data_args import (DATA_EPILOG, HelpFormatter, add_data_format_arguments,
                                      add_dataset_argument, data_format_from_args)
from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Prune a circuit (.pcc or .pcir) by circuit flows (Dang, Liu & Van den
Broeck, NeurIPS 2022): every sum edge's flow is summed over the data (the
--data file, or the train split of --dataset NAME), the --keep fraction of
sum edges with the largest flows is kept (globally), every sum node keeps at
least its best edge, nodes no longer reachable from the root are removed,
and each sum node's weights are renormalised over its kept edges. The
result is checked (smoothness, decomposability, normalised weights), goes
through the passes again (blocks are re-detected) and is written as a .pcc
for the input's backend, device and dtype. docs/handbook/prune-grow.md.
"""

EPILOG = "example:\n  pcc prune trained.pcc --dataset nltcs --keep 0.5 -o pruned.pcc\n\n" + DATA_EPILOG


def register(subparsers) -> None:
    p = subparsers.add_parser("prune", help="remove the sum edges with the smallest flows",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=HelpFormatter)
    add_circuit_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data file the flows are summed over (required unless "
                                       "--dataset)")
    add_dataset_argument(source)
    add_data_format_arguments(p)
    p.add_argument("--keep", type=float, default=0.5,
                   help="fraction of sum edges kept, in (0, 1]")
    p.add_argument("--batch-size", type=int, default=1024, help="samples per forward pass")
    p.add_argument("-o", "--output", required=True, help="output .pcc")
    p.set_defaults(func=run)


def check_fraction(flag: str, value: float) -> None:
    """DataError unless 0 < value <= 1."""
    import math
    from pccompiler.errors import DataError
    if not (math.isfinite(value) and 0 < value <= 1):
        raise DataError(f"{flag} {value} must lie in (0, 1]")


def run(args) -> int:
    from pccompiler.cli.paths import check_output, check_positive
    check_output(args.output)
    check_fraction("--keep", args.keep)
    check_positive("--batch-size", args.batch_size)
    fmt = data_format_from_args(args)
    from pccompiler.driver import open_circuit
    from pccompiler.train import load_data, load_dataset
    from pccompiler.train.prune_grow import prune, recompile, sum_edge_count
    circuit = open_circuit(args.file, args.backend, args.device)
    if args.data is not None:
        data = load_data(args.data, circuit.model, fmt)
    else:
        data = load_dataset(args.dataset, "train", circuit.model)
    before = sum_edge_count(circuit.model)
    model = prune(circuit, data, args.keep, args.batch_size)
    recompile(model, circuit).save(args.output)
    print(f"pruned {before} -> {sum_edge_count(model)} sum edges; saved {args.output}")
    return 0
