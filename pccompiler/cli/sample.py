"""`pcc sample`: draw samples from a circuit."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pccompiler.cli.data_args import add_data_format_arguments, data_format_from_args
from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Draw N samples from a circuit (.pcir or .pcc) and write them as
comma-separated lines (to a file with -o, else to stdout).

--given FILE samples conditionally: one line per row of FILE, its filled
cells kept and its empty (`1,,0`) or `?` cells drawn from the circuit's
distribution given the filled ones (-n is then not used).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="draw samples", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_circuit_arguments(p)
    p.add_argument("-n", "--num-samples", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="output .csv (default: stdout)")
    p.add_argument("--given", metavar="FILE",
                   help="evidence file: complete each row's empty or '?' cells by sampling "
                        "them given the row's other values (default: unconditional samples)")
    add_data_format_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pccompiler.cli.paths import check_output
    from pccompiler.errors import DataError
    if args.num_samples < 1:
        raise DataError("-n must be positive")
    check_output(args.output)
    import torch
    from pccompiler.driver import open_circuit
    circuit = open_circuit(args.file, args.backend, args.device)
    gen = torch.Generator(device=circuit.device).manual_seed(args.seed)
    if args.given:
        samples = complete_rows(circuit, args.given, lambda x, m: circuit.conditional_sample(
            x, m, generator=gen), fmt=data_format_from_args(args))
    else:
        try:
            samples = circuit.sample(args.num_samples, generator=gen).cpu().numpy()
        except RuntimeError as exc:       # torch's allocators: OutOfMemoryError, "can't allocate"
            if not (isinstance(exc, torch.OutOfMemoryError) or "allocate" in str(exc)):
                raise
            raise DataError(f"-n {args.num_samples}: not enough memory on {circuit.device} for "
                            f"{args.num_samples} samples; draw fewer") from None
    write_rows(samples, args.output)
    return 0


def complete_rows(circuit, path: str, complete, batch_size: int = 1024,
                  fmt=None) -> np.ndarray:
    """`complete(x, missing)` on the rows of the evidence file `path` (empty
    and `?` cells missing), in batches; the completed table as numpy."""
    from pccompiler.train.data import load_data_missing
    from pccompiler.train.progress import batches
    x, missing = load_data_missing(path, circuit.model, fmt)
    return np.concatenate([complete(x[rows], missing[rows]).cpu().numpy()
                           for rows in batches(len(x), batch_size)])


def write_rows(rows: np.ndarray, output: str | None) -> None:
    """Comma-separated lines, to the file `output` (atomically) or stdout."""
    fmt = "%.6g" if rows.dtype.kind == "f" else "%d"
    if output:
        from pccompiler.ir.fileio import atomic_write
        import io
        buf = io.StringIO()
        np.savetxt(buf, rows, fmt=fmt, delimiter=",")
        atomic_write(output, buf.getvalue().encode())
    else:
        np.savetxt(sys.stdout, rows, fmt=fmt, delimiter=",")
