"""`pcc sample`: draw samples from a circuit."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Draw N samples from a circuit (.pcir or .pcc) and write them as
comma-separated lines (to a file with -o, else to stdout).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("sample", help="draw samples", description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_circuit_arguments(p)
    p.add_argument("-n", "--num-samples", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", help="output .csv (default: stdout)")
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
    try:
        samples = circuit.sample(args.num_samples, generator=gen).cpu().numpy()
    except RuntimeError as exc:       # torch's allocators: OutOfMemoryError, "can't allocate"
        if not (isinstance(exc, torch.OutOfMemoryError) or "allocate" in str(exc)):
            raise
        raise DataError(f"-n {args.num_samples}: not enough memory on {circuit.device} for "
                        f"{args.num_samples} samples; draw fewer") from None
    fmt = "%.6g" if samples.dtype.kind == "f" else "%d"
    if args.output:
        from pccompiler.ir.fileio import atomic_write
        import io
        buf = io.StringIO()
        np.savetxt(buf, samples, fmt=fmt, delimiter=",")
        atomic_write(args.output, buf.getvalue().encode())
    else:
        np.savetxt(sys.stdout, samples, fmt=fmt, delimiter=",")
    return 0
