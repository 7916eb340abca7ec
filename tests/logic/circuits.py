"""Small logic circuits for the logic tests: a hand-written SDD (no PySDD
needed) and brute-force oracles over every assignment."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from pccompiler.data.locate import SHARED_DATA_DIR

CIRCUITS = SHARED_DATA_DIR / "circuits"
SHARED = ["sudoku_4", "4-grid", "seq_fun", "road_r"]

# f = (x1 & x2) | (~x1 & x3) over the vtree ((x1 x2) x3): a true sub, false
# subs, and a prime (~x1, vtree 0) below the left child (vtree 1), so
# import must fold constants and smooth. 4 models.
VTREE = """c a tiny vtree
vtree 5
L 0 1
L 2 2
I 1 0 2
L 4 3
I 3 1 4
"""
SDD = """c f = (x1 & x2) | (~x1 & x3)
sdd 10
L 0 0 1
L 1 2 2
L 2 0 -1
L 3 2 -2
F 4
T 5
D 6 1 2 0 1 2 4
L 7 4 3
D 8 1 2 0 3 2 4
D 9 3 3 6 5 2 7 8 4
"""


def tiny_formula(x: np.ndarray) -> np.ndarray:
    return (x[:, 0] & x[:, 1]) | (1 - x[:, 0]) & x[:, 2]


def write(tmp: Path, sdd: str = SDD, vtree: str = VTREE, name: str = "f") -> Path:
    (tmp / f"{name}.vtree").write_text(vtree)
    path = tmp / f"{name}.sdd"
    path.write_text(sdd)
    return path


def assignments(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.int64)


def brute_wmc(sat: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[B] WMC: sum over satisfying rows of x of prod of literal weights (w = P(x=1))."""
    lit = np.where(x[None, :, :] == 1, w[:, None, :], 1 - w[:, None, :])   # [B, 2^n, n]
    return (lit.prod(axis=2) * sat[None, :]).sum(axis=1)


def brute_mpe(sat: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[B] largest weight of a satisfying assignment."""
    lit = np.where(x[None, :, :] == 1, w[:, None, :], 1 - w[:, None, :])
    return (lit.prod(axis=2) * sat[None, :]).max(axis=1)
