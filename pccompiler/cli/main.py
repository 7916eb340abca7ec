"""`pcc`: the pccompiler command line.

Each subcommand lives in its own module of this package, exposing
`register(subparsers)`; it adds its parser and sets `func(args) -> int`.
User errors (any PCError) print one line to stderr and exit 1; a reader
that closes stdout early (`pcc sample | head -1`) ends the command quietly
with status 141, as SIGPIPE would.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pccompiler.errors import PCError
from pccompiler.version import __version__

# Subcommand modules, in the order `pcc --help` lists them.
SUBCOMMANDS = [
    "build", "import_", "dump", "parse", "verify", "stat", "dot", "passes", "compile",
    "train", "prune", "grow", "eval", "sample", "mpe",
]

DESCRIPTION = """\
pccompiler: a compiler for probabilistic circuits.

The commands follow the pipeline:
  pcc build   STRUCTURE ... -o model.pcir   make a circuit (HCLT, PD, RAT-SPN, HMM)
  pcc import  FILE.sdd -o model.pcir       import a logic circuit (SDD)
  pcc dump | stat | verify | dot FILE       look at any .pcir / .pcc file
  pcc compile model.pcir -o model.pcc       run the passes, pick a backend
  pcc train | eval | sample model.pcc       learn from data and query it
  pcc prune | grow model.pcc -o out.pcc     change the structure (flows, copies)
  pcc mpe model.pcc evidence.csv            complete missing values (MPE)

Run `pcc COMMAND --help` for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pcc", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pccompiler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"pccompiler.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except PCError as exc:
        print(f"pcc {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pcc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """stdout's reader closed the pipe (`pcc sample | head -1`): stop
    quietly with the shell's status for SIGPIPE, 141. stdout is pointed at
    /dev/null first so the flush at exit does not raise again (the recipe
    of Python's signal documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):      # stdout without a file descriptor (captured)
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
