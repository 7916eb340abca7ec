"""The binary density-estimation benchmark (DEBD, the "twenty datasets").

Files are `<name>.<split>.data.gz` (or uncompressed `.data`), one sample per
line, comma-separated 0/1. nltcs ships with the package so examples and
tests run without the shared data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pccompiler.data.files import read_data_file, verify_checksum
from pccompiler.data.locate import find_file
from pccompiler.errors import DataError

SPLITS = ("train", "valid", "test")

# Variables per set (README of the benchmark, checked against the files).
DEBD_NUM_VARS = {
    "nltcs": 16, "msnbc": 17, "kdd": 64, "plants": 69, "baudio": 100, "jester": 100,
    "bnetflix": 100, "accidents": 111, "tretail": 135, "pumsb_star": 163, "dna": 180,
    "kosarek": 190, "msweb": 294, "book": 500, "tmovie": 500, "cwebkb": 839, "cr52": 889,
    "c20ng": 910, "bbc": 1058, "ad": 1556, "mushrooms": 112, "nips": 500,
}


def debd_path(name: str, split: str, root: str | os.PathLike | None = None) -> Path:
    """Path of one split file, searched as pccompiler.data.locate says."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} of data set {name!r}; expected one of {SPLITS}")
    names = [f"{name}.{split}.data.gz", f"{name}.{split}.data"]
    hint = "" if name in DEBD_NUM_VARS else f"known DEBD sets: {', '.join(sorted(DEBD_NUM_VARS))}"
    return find_file("debd", names, root, hint)


def load_debd(name: str, split: str = "train", root: str | os.PathLike | None = None,
              verify: bool = False) -> np.ndarray:
    """Load a DEBD split as a uint8 array [rows, vars] of 0/1.

    `root`: a folder holding `<name>.<split>.data.gz`; by default PCC_DATA_DIR,
    then `../shared/data/debd` beside the repository, then the shipped copy.
    `verify`: check the file against the SHA256SUMS beside it (DataError on a
    mismatch).
    """
    path = debd_path(name, split, root)
    if verify:
        verify_checksum(path)
    data = read_data_file(path)
    expected = DEBD_NUM_VARS.get(name)
    if expected is not None and data.shape[1] != expected:
        raise DataError(f"{path}: {data.shape[1]} columns, but {name} has {expected} variables")
    return data
