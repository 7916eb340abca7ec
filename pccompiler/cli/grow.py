"""`pcc grow`: copy every node and perturb the parameters."""

from __future__ import annotations

from pccompiler.cli.data_args import HelpFormatter
from pccompiler.cli.train import add_circuit_arguments

DESCRIPTION = """\
Grow a circuit (.pcc or .pcir) as in Dang, Liu & Van den Broeck (NeurIPS
2022): every node is copied --factor times (the root is not), each sum edge
(n, c) of weight w becomes edges from every copy of n to every copy of c of
weight w / factor, so with --noise 0 the distribution is unchanged; then
every sum weight and categorical parameter is multiplied by
max(1 + noise * eps, 1e-6), eps ~ N(0, 1) (seeded by --seed), and
renormalised. The result is checked (smoothness, decomposability,
normalised weights), goes through the passes again and is written as a
.pcc for the input's backend, device and dtype. docs/handbook/prune-grow.md.
"""

EPILOG = "example:\n  pcc grow pruned.pcc --factor 2 --noise 0.1 -o grown.pcc\n"


def register(subparsers) -> None:
    p = subparsers.add_parser("grow", help="copy every node, perturb the parameters",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=HelpFormatter)
    add_circuit_arguments(p)
    p.add_argument("--factor", type=int, default=2, help="copies of every node (>= 1)")
    p.add_argument("--noise", type=float, default=0.1,
                   help="relative size of the parameter perturbation (>= 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the perturbation")
    p.add_argument("-o", "--output", required=True, help="output .pcc")
    p.set_defaults(func=run)


def run(args) -> int:
    from pccompiler.cli.paths import check_finite, check_output, check_positive
    check_output(args.output)
    check_positive("--factor", args.factor)
    check_finite("--noise", args.noise)
    from pccompiler.driver import open_circuit
    from pccompiler.train.prune_grow import grow, recompile, sum_edge_count
    circuit = open_circuit(args.file, args.backend, args.device)
    model = grow(circuit, args.factor, args.noise, args.seed)
    recompile(model, circuit).save(args.output)
    print(f"grew {sum_edge_count(circuit.model)} -> {sum_edge_count(model)} sum edges; "
          f"saved {args.output}")
    return 0
