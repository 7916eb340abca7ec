"""Large random SDDs for the logic benchmarks (bench/logic_race.py,
bench/logic_scale.py), compiled with PySDD.

A random 3-CNF over n variables compiled clause by clause blows up in time
long before 10^6 nodes (40 variables, 80 clauses: 87k nodes in a minute),
so the formula is a conjunction of independent random 3-CNF blocks of
`block_vars` variables each (clause ratio `ratio`), over a balanced vtree:
each block compiles on its own subtree, and the blocks are conjoined
pairwise (a balanced tree of conjunctions, n log n, not quadratic). The
SDD has about 950 nodes per 20-variable block at ratio 3.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / "data" / "logic_cache"   # git-ignored


def random_block_cnf_sdd(blocks: int, block_vars: int = 20, ratio: float = 3.0,
                         seed: int = 0):
    """(manager, root SddNode) of the conjunction of `blocks` random 3-CNFs."""
    from pysdd.sdd import SddManager, Vtree

    rng = np.random.default_rng(seed)
    mgr = SddManager.from_vtree(Vtree(var_count=blocks * block_vars, vtree_type="balanced"))
    mgr.auto_gc_and_minimize_off()
    parts = []
    for b in range(blocks):
        g = mgr.true()
        for _ in range(int(ratio * block_vars)):
            v = b * block_vars + rng.choice(block_vars, 3, replace=False) + 1
            s = rng.choice([-1, 1], 3)
            g = g & (mgr.literal(int(s[0] * v[0])) | mgr.literal(int(s[1] * v[1]))
                     | mgr.literal(int(s[2] * v[2])))
        parts.append(g)
    while len(parts) > 1:
        parts = [parts[i] & parts[i + 1] if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return mgr, parts[0]


def sdd_file(blocks: int, folder: Path = CACHE, block_vars: int = 20, seed: int = 0,
             verbose: bool = True) -> Path:
    """The .sdd (with its .vtree beside it) of random_block_cnf_sdd, made once
    and cached in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"blocks{blocks}_v{block_vars}_s{seed}.sdd"
    if not path.exists():
        t = time.perf_counter()
        mgr, root = random_block_cnf_sdd(blocks, block_vars, seed=seed)
        tmp = path.with_suffix(".tmp")
        root.save(str(tmp).encode())
        mgr.vtree().save(str(path.with_suffix(".vtree")).encode())
        tmp.rename(path)
        if verbose:
            print(f"[logic_sdds] {path.name}: {root.count()} SDD nodes, "
                  f"{time.perf_counter() - t:.1f} s with pysdd", flush=True)
    return path
