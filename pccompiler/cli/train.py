"""`pcc train`: learn a circuit's parameters with EM and save a .pcc."""

from __future__ import annotations

import math
import os
import sys

from pccompiler.cli.data_args import (DATA_EPILOG, HelpFormatter, add_data_format_arguments,
                                      add_dataset_argument, data_format_from_args)
from pccompiler.cli.prune_grow_train import PRUNE_GROW_HELP, add_prune_grow_arguments

DESCRIPTION = """\
Train a circuit (.pcir or .pcc) with expectation-maximisation and write the
result as a .pcc. Data files hold one sample per line (.data, .csv,
optionally gzipped; see 'data files' below), or --dataset NAME names a set
(its train split, and its valid and test splits unless --valid/--test are
given). The output path (its folder exists and is writable) is checked
first, and every data set before any training step: a bad value stops with
an error naming its line and column, and the output file is left untouched.

Mini-batch EM (--em mini) updates after every batch with a step size
annealed from --step-size (default 0.1) to --step-size-end; full-batch EM
(--em full) accumulates flows over the whole training set and updates once
per epoch, with step size 1.0 unless --step-size says otherwise.

--history FILE.csv writes one row per epoch (epoch, train_ll, valid_ll,
test_ll, seconds, step_size; log-likelihoods in nats per sample, empty where
there is no such set), rewritten atomically after every epoch: a crash keeps
the epochs done, and --resume continues the file. The test LL is evaluated
every epoch when --history or --plot is given (one forward pass over the
test set, like the validation LL). --plot FILE.png draws the curves at the
end (needs matplotlib: pip install 'pccompiler[plot]').

The progress bar (stderr) shows batches, ETA and the running train LL; it
draws only when stderr is a terminal (nothing in logs or pipes). --quiet
turns it off.

--nproc N trains data-parallel on N processes (one GPU each with --device
cuda, else CPU processes with gloo): every global batch is split across the
ranks and their parameter flows are summed before each update, so the
result equals single-process training up to float rounding. Under torchrun
(`torchrun --nproc-per-node N -m pccompiler.cli.main train ...`) the same
happens without --nproc. Only rank 0 prints and writes the output, after
every rank has finished; a failure on any rank stops all of them.

--soften BETA trains on softened data (Liu & Van den Broeck 2021): every
observed value counts as soft evidence, true with probability BETA and
otherwise one of the variable's other values (--soften-kernel uniform) or a
value drawn from the training marginals (marginal; categorical inputs
only). Gaussian inputs cannot be softened. The train LL printed is that of
the softened data; valid and test LLs are the model's own.

--checkpoint-every N saves the circuit and the training state every N
epochs to OUTPUT.ckpt (atomically); after a crash, the same command with
--resume continues from it and ends with the same result as an
uninterrupted run. The checkpoint is removed once OUTPUT is saved.

""" + PRUNE_GROW_HELP


def add_circuit_arguments(p) -> None:
    p.add_argument("file", help="circuit (.pcir or .pcc)")
    p.add_argument("--backend", default=None, help="backend (default: the file's, or torch/triton)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N (default: the file's, or the backend's default)")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a circuit with EM", description=DESCRIPTION,
                              epilog=DATA_EPILOG, formatter_class=HelpFormatter)
    add_circuit_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="training data file (required unless --dataset)")
    add_dataset_argument(source)
    p.add_argument("--valid", help="validation data file, LL printed per epoch (default: "
                                   "none, or the --dataset's valid split)")
    p.add_argument("--test", help="test data file, LL printed at the end (default: none, or "
                                  "the --dataset's test split)")
    add_data_format_arguments(p)
    p.add_argument("--epochs", type=int, default=10, help="passes over the training data")
    p.add_argument("--batch-size", type=int, default=512, help="samples per EM step")
    p.add_argument("--em", choices=["mini", "full"], default="mini",
                   help="mini-batch or full-batch EM")
    p.add_argument("--step-size", type=float, default=None,
                   help="EM step size in (0, 1] (default: 0.1 for --em mini, 1.0 for --em full)")
    p.add_argument("--step-size-end", type=float, default=None,
                   help="final step size of the linear annealing (default: constant)")
    p.add_argument("--pseudocount", type=float, default=0.1,
                   help="added to every flow before normalising")
    p.add_argument("--soften", type=float, default=None, metavar="BETA",
                   help="data softening: keep each observed value with probability BETA "
                        "(e.g. 0.999; default: off)")
    p.add_argument("--soften-kernel", choices=["uniform", "marginal"], default="uniform",
                   help="where softening moves the rest of the mass (default uniform)")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch order")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: a bar when "
                                                        "stderr is a terminal)")
    p.add_argument("--history", metavar="FILE.csv",
                   help="write per-epoch train/valid/test LL, seconds and step size "
                        "(default: none; see above)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the LL curves with matplotlib (default: none; see above)")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes (default 1; see above)")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="save a checkpoint to OUTPUT.ckpt every N epochs (default: never)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT.ckpt if it exists (same data and options)")
    add_prune_grow_arguments(p)
    p.add_argument("-o", "--output", required=True, help="output .pcc")
    p.set_defaults(func=run)


def check_options(args) -> None:
    """Refuse numbers EM cannot use, before any file is read or written."""
    from pccompiler.cli.paths import check_output, check_positive
    from pccompiler.errors import DataError
    check_positive("--epochs", args.epochs)
    check_positive("--batch-size", args.batch_size)
    if args.nproc < 1:
        raise DataError(f"--nproc must be positive, not {args.nproc}")
    for flag, value in (("--step-size", args.step_size), ("--step-size-end", args.step_size_end)):
        if value is not None and not (math.isfinite(value) and 0 < value <= 1):
            raise DataError(f"{flag} {value} must lie in (0, 1]")
    if not (math.isfinite(args.pseudocount) and args.pseudocount >= 0):
        raise DataError(f"--pseudocount {args.pseudocount} must be a finite number >= 0")
    if args.step_size is None:
        args.step_size = 1.0 if args.em == "full" else 0.1
    soften = getattr(args, "soften", None)
    if soften is not None and not (math.isfinite(soften) and 0 < soften <= 1):
        raise DataError(f"--soften {soften} must lie in (0, 1]")
    if args.checkpoint_every < 0:
        raise DataError(f"--checkpoint-every must be >= 0, not {args.checkpoint_every}")
    for flag in ("history", "plot"):
        check_output(getattr(args, flag, None), f"--{flag}")
    if getattr(args, "plot", None):
        from pccompiler.train.history import require_matplotlib
        require_matplotlib()
    args.data_format = data_format_from_args(args)


def check_outputs(args) -> None:
    """Refuse an output (or checkpoint) path no write could succeed on, and
    a device this machine lacks, before any data is read or any epoch runs."""
    from pccompiler.cli.paths import check_output
    check_output(args.output)
    if args.checkpoint_every or args.resume:
        from pccompiler.train.checkpoint import checkpoint_path
        check_output(checkpoint_path(args.output), "checkpoint")
    if args.device is not None:       # data-parallel runs check their ranks' GPUs themselves
        from pccompiler.driver import check_device
        check_device(args.device, present=args.nproc == 1)


def run(args) -> int:
    check_options(args)
    check_outputs(args)
    if args.prune_grow:
        from pccompiler.cli.prune_grow_train import run_prune_grow
        return run_prune_grow(args)
    from pccompiler.driver import open_circuit
    from pccompiler.errors import DataError
    from pccompiler.train.checkpoint import checkpoint_path, fingerprint, resume_state, write_checkpoint
    from pccompiler.train import evaluate, load_sets, train_em
    from pccompiler.train.history import History, plot_history
    from pccompiler.train import distributed
    if args.nproc > 1 or distributed.under_torchrun():
        if args.checkpoint_every or args.resume:
            raise DataError("--checkpoint-every / --resume are for single-process training")
        if args.soften is not None:
            raise DataError("--soften is for single-process training (not yet passed on by "
                            "data-parallel training)")
        if args.history or args.plot:
            raise DataError("--history / --plot are for single-process training")
        return distributed.run_train(args)
    circuit = open_circuit(args.file, args.backend, args.device)
    model = circuit.model
    train, valid, test = load_sets(model, args.data, args.dataset, args.valid, args.test,
                                   args.data_format)
    ckpt, prints = checkpoint_path(args.output), fingerprint(args, train)
    if args.soften is not None:         # a checkpoint resumes only with the same softening
        prints["soften"] = [args.soften, args.soften_kernel]
    start, rng_state = 1, None
    if args.resume and os.path.exists(ckpt):
        resumed = open_circuit(ckpt, args.backend, args.device)
        state = resume_state(resumed, ckpt, prints)
        circuit, start, rng_state = resumed, state["epoch"] + 1, state["rng_state"]
        print(f"resuming from {ckpt} after epoch {state['epoch']}")
    history = History(args.history, start) if args.history or args.plot else None

    def on_epoch(stats, state) -> None:
        if history is not None:
            test_ll = evaluate(circuit, test, args.batch_size) if test is not None else None
            history.add(stats.epoch, stats.train_ll, stats.valid_ll, test_ll, stats.seconds,
                        stats.step_size)
        every = args.checkpoint_every
        if every and stats.epoch % every == 0 and stats.epoch < args.epochs:
            write_checkpoint(ckpt, circuit, state, prints)

    train_em(circuit, train, valid, epochs=args.epochs, batch_size=args.batch_size, em=args.em,
             step_size=args.step_size, step_size_end=args.step_size_end,
             pseudocount=args.pseudocount, seed=args.seed, log=print,
             progress=None if args.quiet else sys.stderr, start_epoch=start,
             rng_state=rng_state, on_epoch=on_epoch, soften=args.soften,
             soften_kernel=args.soften_kernel)
    if test is not None:
        print(f"test LL {evaluate(circuit, test, args.batch_size):.4f}")
    if args.plot:
        plot_history(history.rows, args.plot)
    circuit.save(args.output)
    if os.path.exists(ckpt):
        os.unlink(ckpt)
    print(f"saved {args.output}")
    return 0
