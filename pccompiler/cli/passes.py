"""`pcc passes`: list the compiler passes and the default pipeline."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from pccompiler.passes import DEFAULT_PIPELINE, all_passes
    infos = all_passes()
    if args.json:
        print(json.dumps({"default_pipeline": DEFAULT_PIPELINE, "passes": [
            {"name": p.name, "description": p.description, "consumes": p.consumes,
             "produces": p.produces, "options": dict(p.defaults)} for p in infos]}, indent=2))
        return 0
    width = max(len(p.name) for p in infos)
    print("passes (name{option=default,...}: what it does):")
    for p in infos:
        opts = ",".join(f"{k}={v}" for k, v in p.defaults)
        label = p.name + (f"{{{opts}}}" if opts else "")
        print(f"  {p.name:<{width}}  {p.description}")
        if opts:
            print(f"  {'':<{width}}  options: {label}")
    print(f"\ndefault pipeline:\n  {DEFAULT_PIPELINE}")
    print("\nuse with: pcc compile MODEL --passes 'PIPELINE' [--print-after NAME] [--time-passes]")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "passes", help="list the compiler passes and the default pipeline",
        description="List every registered compiler pass with a one-line description and its "
                    "options, and the default pipeline that `pcc compile` runs. A pipeline is "
                    "a comma-separated list of pass names, each optionally with options: "
                    "'partition-blocks{max_block=16},detect-block-sparsity{tol=0.25},...'.")
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.set_defaults(func=run)
