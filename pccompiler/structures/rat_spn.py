"""Random and tensorized SPNs (RAT-SPN; Peharz et al., UAI 2019), as
PyJuice 2.6.3's `RAT_SPN` builds them.

One K-node input group per variable, shared by all repetitions. Each
repetition splits the variable set recursively: a scope is shuffled and cut
into `num_pieces` near-equal parts (the first `len % num_pieces` parts get
one more variable), down to `depth` levels or until a scope has fewer than
`num_pieces` variables. A leaf scope is a product of its input groups then a
dense K x K sum; an inner scope is a product of its parts' sums then a dense
K x K sum. Each repetition's top product goes into the root: one node over
all repetitions' products.

Edges (full binary splits of n >= 2^depth variables, R repetitions):
R [(2^(D+1) - 2) K^2 + 2K (2^D - 1) + K n] + R K.
"""

from __future__ import annotations

import numpy as np

from pccompiler.frontend import builder as pcb
from pccompiler.errors import BuildError
from pccompiler.structures.common import (INPUT_DISTS, Layering, check_positive, make_inputs,
                                          max_pow2_divisor)


def split_scope(scope: np.ndarray, num_pieces: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle `scope` and cut it into num_pieces near-equal sorted parts."""
    shuffled = rng.permutation(scope)
    q, r = divmod(len(scope), num_pieces)
    bounds = np.cumsum([0] + [q + (i < r) for i in range(num_pieces)])
    return [np.sort(shuffled[bounds[i]:bounds[i + 1]]) for i in range(num_pieces)]


def rat_spn(num_vars: int, num_latents: int, depth: int, num_repetitions: int,
            num_pieces: int = 2, *, input_dist: str = "categorical", num_cats: int = 256,
            seed: int = 0, dtype: type = np.float32, pyjuice_layers: bool = True) -> pcb.SumGroup:
    """Build a RAT-SPN over variables 0..num_vars-1; returns the root.

    num_latents: K, nodes per sum group (and per input group).
    depth: levels of random splits; num_repetitions: independent split trees.
    num_pieces: parts per split.
    input_dist, num_cats: leaf distribution.
    seed, dtype: random splits and parameters; parameter dtype.
    pyjuice_layers: pass-throughs where repetitions end at different depths.
    """
    check_positive(num_vars=num_vars, num_latents=num_latents, num_repetitions=num_repetitions,
                   num_pieces=num_pieces)
    if depth < 0:
        raise BuildError(f"rat_spn: depth must be >= 0, got {depth}")
    if num_pieces < 2:
        raise BuildError(f"rat_spn: num_pieces must be >= 2, got {num_pieces}")
    if input_dist not in INPUT_DISTS:
        raise BuildError(f"rat_spn: input_dist must be one of {INPUT_DISTS}, got {input_dist!r}")
    rng = np.random.default_rng(seed)
    layers = Layering(block_size=min(256, max_pow2_divisor(num_latents)), rng=rng, dtype=dtype,
                      pyjuice_layers=pyjuice_layers)
    leaves = [make_inputs(v, num_latents, input_dist, num_cats, rng, dtype, name=f"x{v}")
              for v in range(num_vars)]

    def product_of(scope: np.ndarray, level: int, tag: str) -> pcb.ProductGroup:
        if level >= depth or len(scope) < num_pieces:
            return layers.multiply(*[leaves[v] for v in scope], name=f"{tag}.p")
        parts = split_scope(scope, num_pieces, rng)
        sums = [layers.summate([product_of(part, level + 1, f"{tag}.{i}")], num_latents,
                               name=f"{tag}.{i}")
                for i, part in enumerate(parts)]
        return layers.multiply(*sums, name=f"{tag}.p")

    tops = [product_of(np.arange(num_vars), 0, f"r{rep}") for rep in range(num_repetitions)]
    return layers.summate(tops, 1, name="root")


def rat_spn_num_edges(num_vars: int, num_latents: int, depth: int, num_repetitions: int,
                      num_pieces: int = 2) -> int:
    """PyJuice's edge count of `rat_spn(...)`. Split sizes do not depend on
    the shuffle, so the count follows from the scope sizes alone."""
    k = num_latents

    def product_edges(size: int, level: int) -> int:
        if level >= depth or size < num_pieces:
            return k * size
        q, r = divmod(size, num_pieces)
        parts = [q + (i < r) for i in range(num_pieces)]
        return k * num_pieces + sum(k * k + product_edges(p, level + 1) for p in parts)

    return num_repetitions * (product_edges(num_vars, 0) + k)
