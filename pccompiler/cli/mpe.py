"""`pcc mpe CIRCUIT DATA`: complete each row's missing cells with the
max-product (MPE) assignment."""

from __future__ import annotations

import argparse

from pccompiler.cli.data_args import add_data_format_arguments, data_format_from_args
from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Complete every row of DATA: its filled cells are kept, its empty (`1,,0`)
or `?` cells get the max-product assignment (argmax over the missing values
of the circuit's max-product value: every sum node takes its best weighted
child instead of the sum). The rows are written like `pcc sample` writes
samples (to a file with -o, else to stdout).

This is the exact most probable completion for a deterministic circuit (at
most one child of every sum node is nonzero for each complete input); for
any other circuit it is the best single induced tree (Viterbi-style), an
approximation whose probability can fall below the true maximum of the
marginal. docs/queries.md says exactly what each query computes.
"""

EPILOG = """\
examples:
  pcc mpe model.pcc evidence.csv              # rows like 1,,0,? -> stdout
  pcc mpe model.pcc evidence.csv -o completed.csv
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("mpe", help="complete missing values (max-product / MPE)",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_circuit_arguments(p)
    p.add_argument("data", metavar="DATA",
                   help="evidence file: one row per line, empty or '?' cells to complete")
    p.add_argument("-o", "--output", help="output .csv (default: stdout)")
    p.add_argument("--batch-size", type=int, default=1024, help="rows per batch (1024)")
    add_data_format_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pccompiler.cli.paths import check_output, check_positive
    from pccompiler.cli.sample import complete_rows, write_rows
    from pccompiler.driver import open_circuit
    check_positive("--batch-size", args.batch_size)
    check_output(args.output)
    fmt = data_format_from_args(args)
    circuit = open_circuit(args.file, args.backend, args.device)
    write_rows(complete_rows(circuit, args.data, circuit.mpe, args.batch_size, fmt), args.output)
    return 0
