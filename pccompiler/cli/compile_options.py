"""The pass options of `pcc compile` (--passes, --print-after, --time-passes,
--check-each, --cache-dir, --no-cache) and how they reach the pass manager.

The command itself lives in pccompiler/cli/compile.py; these helpers sit in
the CLI stage because they turn command-line arguments into calls of the
passes and the driver, which must not know about argparse."""

from __future__ import annotations

import argparse
import sys

from pccompiler.ir import pcir
from pccompiler.passes.manager import DEFAULT_BLOCK_LIMIT, CompileResult, compile_model
from pccompiler.passes.registry import DEFAULT_PIPELINE


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --passes, --print-after, --time-passes, --check-each, --cache-dir, --no-cache."""
    group = parser.add_argument_group("passes")
    group.add_argument("--passes", metavar="PIPELINE", default=None,
                       help=f"pass pipeline, e.g. 'partition-blocks{{max_block=16}},...' "
                            f"(default: {DEFAULT_PIPELINE}; see `pcc passes`)")
    group.add_argument("--print-after", metavar="NAME", action="append", default=[],
                       help="print the IR after this pass (repeatable; 'all' for every pass); "
                            "the passes run even when the layout cache holds the result")
    group.add_argument("--time-passes", action="store_true",
                       help="print the time, peak memory and notes of every pass; the passes "
                            "run even when the layout cache holds the result (still stored)")
    group.add_argument("--check-each", action="store_true",
                       help="run the IR checker after every pass")
    group.add_argument("--cache-dir", metavar="DIR", default=None,
                       help="layout cache folder (default $PCC_CACHE_DIR or "
                            "~/.cache/pccompiler/layouts)")
    group.add_argument("--no-cache", action="store_true", help="do not use the layout cache")


def run_passes_from_args(model: pcir.Model, args: argparse.Namespace, backend: str = "",
                         block_limit: int = DEFAULT_BLOCK_LIMIT,
                         out=None) -> CompileResult:
    """compile_model with the options of add_compile_arguments; prints what they ask."""
    out = out or sys.stdout
    cache = None if getattr(args, "no_cache", False) else (getattr(args, "cache_dir", None)
                                                           or True)
    print_after = {p.strip() for item in (getattr(args, "print_after", None) or [])
                   for p in item.split(",") if p.strip()}
    result = compile_model(model, pipeline=getattr(args, "passes", None), cache=cache,
                           print_after=print_after or None, block_limit=block_limit,
                           backend=backend, check_each=getattr(args, "check_each", False),
                           rerun=getattr(args, "time_passes", False),
                           printer=lambda text: print(text, file=out))
    if getattr(args, "time_passes", False):
        print(result.report.table(), file=out)
    return result


def compile_kwargs_from_args(args: argparse.Namespace) -> dict:
    """Keyword arguments for `pccompiler.driver.compile` from the pass options.

    pipeline and cache always; print_after / check_each / rerun (for
    --time-passes) only when given (the driver forwards them to
    compile_model). `--time-passes` is printed by the caller from
    `circuit.compile_report.table()`.
    """
    kwargs = {"pipeline": getattr(args, "passes", None),
              "cache": None if getattr(args, "no_cache", False)
              else (getattr(args, "cache_dir", None) or True)}
    print_after = [p.strip() for item in (getattr(args, "print_after", None) or [])
                   for p in item.split(",") if p.strip()]
    if print_after:
        kwargs["print_after"] = print_after
    if getattr(args, "check_each", False):
        kwargs["check_each"] = True
    if getattr(args, "time_passes", False):
        kwargs["rerun"] = True          # time the passes, not a cache read
    return kwargs
