"""`pcc build STRUCTURE ...`: make a standard circuit and save it as .pcir."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pccompiler.cli.data_args import DATA_EPILOG, add_data_format_arguments

DESCRIPTION = """\
Build a standard probabilistic circuit and write it as a .pcir model file.
Shapes, pairings and edge counts follow PyJuice 2.6.3, so a benchmark against
PyJuice compares the same circuit. Parameters are random (from --seed).

structures:
  hclt     hidden Chow-Liu tree; the tree is learned from data (--data/--dataset)
  pd       Poon-Domingos region structure over an image (--shape, --split)
  rat-spn  random tensorized SPN (--num-vars, --depth, --repetitions)
  hmm      hidden Markov model (--length, --emits), homogeneous by default

Run `pcc build STRUCTURE --help` for a structure's options.
"""

EPILOG = """\
examples:
  pcc build hclt --dataset nltcs --latents 32 -o nltcs.pcir
  pcc build hclt --data my.train.data.gz --latents 64 -o my.pcir
  pcc build hclt --dataset mnist --latents 128 -o mnist_hclt.pcir   # 784 vars x 256 cats
  pcc build pd --shape 28x28 --split 7 --latents 32 -o pd.pcir
  pcc build rat-spn --num-vars 784 --latents 64 --depth 6 --repetitions 8 -o rat.pcir
  pcc build hmm --length 32 --latents 256 --emits 4096 -o hmm.pcir

""" + DATA_EPILOG

_STRUCTURE_EXAMPLES = {
    "hclt": "examples:\n  pcc build hclt --dataset nltcs --latents 32 -o nltcs.pcir\n"
            "  pcc build hclt --dataset mnist --latents 128 --num-bins 16 -o mnist.pcir\n"
            "  pcc build hclt --data train.csv --input-dist bernoulli --latents 16 -o m.pcir\n"
            "  pcc build hclt --data x.csv --header --input-dist gaussian --mi-estimator pyjuice "
            "-o g.pcir\n\n" + DATA_EPILOG,
    "pd": "examples:\n  pcc build pd --shape 28x28 --split 7 --latents 32 -o pd.pcir\n"
          "  pcc build pd --shape 32x32x3 --split 8x8x3 --latents 64 --num-cats 256 -o pd.pcir\n",
    "rat-spn": "examples:\n  pcc build rat-spn --num-vars 784 --latents 64 --depth 6 "
               "--repetitions 8 -o rat.pcir\n",
    "hmm": "examples:\n  pcc build hmm --length 32 --latents 256 --emits 4096 -o hmm.pcir\n"
           "  pcc build hmm --length 16 --latents 64 --emits 65 --inhomogeneous -o hmm.pcir\n",
}


# The largest category `--data` may hold when --num-cats does not say: a
# hostile value (10**12) must not size a leaf table.
_MAX_INFERRED_CAT = 65535


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 28x28, got {text!r}") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 28x28, got {text!r}")
    return dims


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build", help="make a standard circuit (HCLT, PD, RAT-SPN, HMM) as a .pcir file",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-o", "--output", required=True, metavar="OUT.pcir",
                        help="the model file to write")
    common.add_argument("--seed", type=int, default=0, help="seed of the random parameters (0)")
    common.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="float type of the parameters (float32)")
    common.add_argument("--name", default="", help="model name stored in the file")
    leaves = argparse.ArgumentParser(add_help=False)
    leaves.add_argument("--input-dist", choices=("categorical", "bernoulli", "gaussian"),
                        default="categorical", help="leaf distribution (categorical)")
    structures = p.add_subparsers(dest="structure", metavar="STRUCTURE", required=True)

    def sub(name: str, help_text: str, parents) -> argparse.ArgumentParser:
        return structures.add_parser(
            name, help=help_text, description=help_text, parents=parents,
            epilog=_STRUCTURE_EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)

    h = sub("hclt", "hidden Chow-Liu tree learned from data", [common, leaves])
    source = h.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE",
                        help="a .data/.csv(.gz) file, one row per sample: category ids, or real "
                             "numbers with --input-dist gaussian (layout: --delimiter, --header)")
    source.add_argument("--dataset", metavar="NAME",
                        help="a DEBD set (nltcs ships with pccompiler) or 'mnist' (the 10k test "
                             "images); where they are looked for: see below")
    add_data_format_arguments(h)
    h.add_argument("--split", default="train", help="DEBD split to learn from (train)")
    h.add_argument("--latents", "-k", type=int, default=32, help="latent states per variable (32)")
    h.add_argument("--num-cats", type=int, default=None,
                   help="categories per variable (default: data max + 1; --data values "
                        f"above {_MAX_INFERRED_CAT} need --num-cats)")
    h.add_argument("--root-nodes", type=int, default=1, help="nodes of the root sum (1)")
    h.add_argument("--chow-liu-root", type=int, default=None,
                   help="tree vertex to root at (default: the tree's center, as PyJuice)")
    h.add_argument("--alpha", type=float, default=0.01, help="Laplace pseudo-count of the MI estimate")
    h.add_argument("--mi-estimator", choices=("counts", "pyjuice"), default="counts",
                   help="mutual information from exact smoothed counts (default) or PyJuice's "
                        "soft-binned estimate (the tree PyJuice would learn)")
    h.add_argument("--num-bins", type=int, default=None,
                   help="MI bins for many-valued variables (counts: 16, pyjuice: 32)")

    d = sub("pd", "Poon-Domingos structure over an image", [common, leaves])
    d.add_argument("--shape", type=_shape, required=True, help="image shape, e.g. 28x28")
    d.add_argument("--split", type=_shape, required=True,
                   help="split interval per axis (one number for all axes), e.g. 7 or 7x7")
    d.add_argument("--latents", "-k", type=int, default=32, help="nodes per region (32)")
    d.add_argument("--num-cats", type=int, default=256, help="categories per pixel (256)")
    d.add_argument("--max-prod-block-conns", type=int, default=4,
                   help="products a parent block mixes before going block-sparse (4)")
    d.add_argument("--block-size", type=int, default=None, help="sum block size (PyJuice's default)")
    d.add_argument("--no-pyjuice-layers", action="store_true",
                   help="leave out the pass-through sums PyJuice's compiler inserts")

    r = sub("rat-spn", "random tensorized SPN", [common, leaves])
    r.add_argument("--num-vars", type=int, required=True, help="number of variables")
    r.add_argument("--latents", "-k", type=int, default=64, help="nodes per sum group (64)")
    r.add_argument("--depth", type=int, default=6, help="levels of random splits (6)")
    r.add_argument("--repetitions", type=int, default=8, help="independent split trees (8)")
    r.add_argument("--pieces", type=int, default=2, help="parts per split (2)")
    r.add_argument("--num-cats", type=int, default=256, help="categories per variable (256)")

    m = sub("hmm", "hidden Markov model", [common])
    m.add_argument("--length", type=int, required=True, help="sequence length")
    m.add_argument("--latents", "-k", type=int, default=256, help="hidden states (256)")
    m.add_argument("--emits", type=int, required=True, help="symbols per step")
    m.add_argument("--inhomogeneous", action="store_true",
                   help="separate transition and emission parameters per step")
    m.add_argument("--no-pyjuice-layers", action="store_true",
                   help="leave out PyJuice's one-child wrapper product")
    p.set_defaults(func=run)


def _load_training_data(args: argparse.Namespace) -> np.ndarray:
    from pccompiler.cli.data_args import data_format_from_args
    from pccompiler.data import load_debd, load_mnist, read_data_file
    if args.data:
        top = args.num_cats - 1 if args.num_cats else _MAX_INFERRED_CAT
        return read_data_file(args.data, max(top, 0), fmt=data_format_from_args(args),
                              real=args.input_dist == "gaussian")
    if args.dataset == "mnist":
        return load_mnist("test")
    return load_debd(args.dataset, args.split)


def build_root(args: argparse.Namespace):
    """The root group the arguments describe (and the data it learned from)."""
    from pccompiler import structures
    dtype = np.float32 if args.dtype == "float32" else np.float64
    if args.structure == "hclt":
        data = _load_training_data(args)
        return structures.hclt(data, args.latents, args.num_cats, chow_liu_root=args.chow_liu_root,
                               input_dist=args.input_dist, num_root_nodes=args.root_nodes,
                               alpha=args.alpha, num_bins=args.num_bins,
                               mi_estimator=args.mi_estimator, seed=args.seed, dtype=dtype)
    if args.structure == "pd":
        split = args.split[0] if len(args.split) == 1 else args.split
        return structures.pd(args.shape, args.latents, split, input_dist=args.input_dist,
                             num_cats=args.num_cats, block_size=args.block_size,
                             max_prod_block_conns=args.max_prod_block_conns, seed=args.seed,
                             dtype=dtype, pyjuice_layers=not args.no_pyjuice_layers)
    if args.structure == "rat-spn":
        return structures.rat_spn(args.num_vars, args.latents, args.depth, args.repetitions,
                                  args.pieces, input_dist=args.input_dist, num_cats=args.num_cats,
                                  seed=args.seed, dtype=dtype)
    return structures.hmm(args.length, args.latents, args.emits, not args.inhomogeneous,
                          seed=args.seed, dtype=dtype, pyjuice_layers=not args.no_pyjuice_layers)


def _options(args: argparse.Namespace) -> dict:
    skip = {"func", "command", "output", "structure"}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
            if k not in skip}


def run(args: argparse.Namespace) -> int:
    import pccompiler as pc
    from pccompiler import ir
    from pccompiler.cli.paths import check_finite, check_output
    from pccompiler.errors import DataError
    from pccompiler.ir.text import edges_text
    from pccompiler.structures import edge_counts
    check_output(args.output)                     # before reading data or building
    if args.structure == "hclt":
        check_finite("--alpha", args.alpha)
        if args.num_bins is not None and args.num_bins < 2:
            raise DataError(f"--num-bins must be >= 2, not {args.num_bins}")
    start = time.perf_counter()
    root = build_root(args)
    metadata = {"structure": args.structure, "build_options": json.dumps(_options(args))}
    model = pc.lower(root, name=args.name or args.structure, metadata=metadata)
    ir.save(model, args.output)
    seconds = time.perf_counter() - start
    c = edge_counts(model)
    print(f"{args.structure}: {c['groups']} groups, {c['nodes']:,} nodes, {edges_text(c)}, "
          f"{c['sum_params'] + c['input_params']:,} params, {seconds:.2f} s -> {args.output}")
    return 0
