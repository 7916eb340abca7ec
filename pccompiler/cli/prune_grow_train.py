"""`pcc train --prune-grow ROUNDS`: the prune-grow-train loop of Dang, Liu &
Van den Broeck (NeurIPS 2022) on the command line, over
`pccompiler.train.prune_grow.prune_grow_train`."""

from __future__ import annotations

import json

PRUNE_GROW_HELP = """\
--prune-grow ROUNDS runs the structure-learning loop of Dang, Liu & Van den
Broeck (NeurIPS 2022) instead of plain EM: each round prunes the circuit to
the --keep fraction of its sum edges with the largest flows on the training
data, grows every node --factor times with parameter noise --noise (seed
--seed + round), recompiles it (blocks re-detected) and runs --epochs EM
epochs (so --epochs is per round). keep = 1/factor keeps the edge count
about constant. One line per round is printed (sum edges after pruning,
growing and training, train and valid LL, seconds); --rounds-log FILE.json writes the
schedule and those records. Single-process only (no --nproc, --resume,
--checkpoint-every, --history, --plot, --soften).
"""


def add_prune_grow_arguments(p) -> None:
    g = p.add_argument_group("prune-grow-train loop (see above)")
    g.add_argument("--prune-grow", type=int, default=0, metavar="ROUNDS",
                   help="rounds of prune -> grow -> EM (default: 0, plain EM)")
    g.add_argument("--keep", type=float, default=0.5,
                   help="fraction of sum edges each pruning keeps, in (0, 1]")
    g.add_argument("--factor", type=int, default=2, help="copies of every node when growing")
    g.add_argument("--noise", type=float, default=0.1,
                   help="relative parameter noise when growing (>= 0)")
    g.add_argument("--rounds-log", metavar="FILE.json",
                   help="write the schedule and the per-round records (default: none)")


def check_prune_grow(args) -> None:
    """One-line errors for numbers and options the loop cannot use."""
    from pccompiler.cli.paths import check_finite, check_output, check_positive
    from pccompiler.cli.prune import check_fraction
    from pccompiler.errors import DataError
    check_positive("--prune-grow", args.prune_grow)
    check_fraction("--keep", args.keep)
    check_positive("--factor", args.factor)
    check_finite("--noise", args.noise)
    check_output(args.rounds_log, "--rounds-log")
    for flag, on in (("--nproc", args.nproc > 1), ("--resume", args.resume),
                     ("--checkpoint-every", args.checkpoint_every),
                     ("--history", args.history), ("--plot", args.plot),
                     ("--soften", args.soften is not None)):
        if on:
            raise DataError(f"{flag} is not available with --prune-grow")


def run_prune_grow(args) -> int:
    check_prune_grow(args)
    from pccompiler.driver import open_circuit
    from pccompiler.ir.fileio import atomic_write
    from pccompiler.train import evaluate, load_sets
    from pccompiler.train.prune_grow import prune_grow_train
    circuit = open_circuit(args.file, args.backend, args.device)
    train, valid, test = load_sets(circuit.model, args.data, args.dataset, args.valid,
                                   args.test, args.data_format)
    schedule = dict(rounds=args.prune_grow, keep=args.keep, factor=args.factor,
                    noise=args.noise, epochs_per_round=args.epochs, em=args.em,
                    batch_size=args.batch_size, step_size=args.step_size,
                    step_size_end=args.step_size_end, pseudocount=args.pseudocount,
                    seed=args.seed)
    circuit, rounds = prune_grow_train(
        circuit, train, valid, rounds=args.prune_grow, keep=args.keep, factor=args.factor,
        noise=args.noise, epochs_per_round=args.epochs, seed=args.seed, log=print,
        batch_size=args.batch_size, em=args.em, step_size=args.step_size,
        step_size_end=args.step_size_end, pseudocount=args.pseudocount)
    test_ll = evaluate(circuit, test, args.batch_size) if test is not None else None
    if test_ll is not None:
        print(f"test LL {test_ll:.4f}")
    if args.rounds_log:
        record = dict(schedule=schedule, rounds=[r.as_dict() for r in rounds], test_ll=test_ll)
        atomic_write(args.rounds_log, (json.dumps(record, indent=1) + "\n").encode())
    circuit.save(args.output)
    print(f"saved {args.output}")
    return 0
