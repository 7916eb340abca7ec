"""Small logic circuits for the logic tests: a hand-written SDD (no PySDD
needed) and brute-force oracles over every assignment."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from pccompiler.data.locate import SHARED_DATA_DIR

# The shared circuits beside the repository, or under $PCC_DATA_DIR/circuits
# (an installed copy on another machine, e.g. bench/gpu/logic_nodes.sh).
CIRCUITS = next((p for p in [Path(os.environ.get("PCC_DATA_DIR", "/nonexistent")) / "circuits"]
                 if (p / "road_r.sdd").exists()), SHARED_DATA_DIR / "circuits")
SHARED = ["sudoku_4", "4-grid", "seq_fun", "road_r"]


def shared_sdd(name: str) -> Path:
    """The path of shared circuit `name`.sdd; the test is skipped where the
    shared data folder is not beside the repository."""
    import pytest

    path = CIRCUITS / f"{name}.sdd"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path

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


def random_cnf_sdd(tmp: Path, rng: np.random.Generator, n: int, num_clauses: int
                   ) -> tuple[Path, np.ndarray, np.ndarray]:
    """PySDD compiles a random 3-CNF over n variables into tmp/r.sdd (+ .vtree):
    (the .sdd path, every assignment x [2^n, n], its satisfying mask)."""
    import pytest
    sdd = pytest.importorskip("pysdd.sdd", reason="pysdd is not installed (extra 'logic')")
    mgr = sdd.SddManager(var_count=n, auto_gc_and_minimize=False)
    clauses = [rng.choice(n, 3, replace=False) + 1 for _ in range(num_clauses)]
    signs = [rng.choice([-1, 1], 3) for _ in clauses]
    f = mgr.true()
    for c, s in zip(clauses, signs):
        f = f & ((mgr.literal(int(s[0] * c[0])) | mgr.literal(int(s[1] * c[1])))
                 | mgr.literal(int(s[2] * c[2])))
    f.save(str(tmp / "r.sdd").encode())
    mgr.vtree().save(str(tmp / "r.vtree").encode())
    x = assignments(n)
    sat = np.ones(len(x), dtype=bool)
    for c, s in zip(clauses, signs):
        sat &= ((x[:, c - 1] == 1) == (s > 0)).any(axis=1)
    return tmp / "r.sdd", x, sat
