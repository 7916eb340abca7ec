"""Pieces shared by the standard structures.

- Random parameters drawn the way PyJuice initializes them (`exp(-4 U)`,
  normalized per node), in the caller's dtype (float32 for big circuits:
  119M weights are 476 MB instead of 952 MB).
- Input groups for the three leaf distributions.
- `Layering`: PyJuice's compile-time depth rule. PyJuice puts every node in
  a layer by depth (input 0, product 1 + max child, sum max child) and, when
  a sum has a product child shallower than itself, inserts a pass-through
  (`multiply(summate(child, block-diagonal identity))`); an input child of a
  sum is wrapped in a one-child product. Reproducing those nodes makes our
  circuits the ones PyJuice actually runs, edge for edge, so benchmarks
  compare equal work.
- `edge_counts(model)`: edges counted as PyJuice's `num_edges` counts them
  (the one count, ir.helpers.edge_counts, re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pccompiler.frontend import builder as pcb
from pccompiler.ir.helpers import edge_counts  # noqa: F401 - re-exported
from pccompiler.errors import BuildError

INPUT_DISTS = ("categorical", "bernoulli", "gaussian")
# PyJuice's initialization: weights exp(-PERTURBATION * U(0,1)), normalized.
PERTURBATION = 4.0


def max_pow2_divisor(n: int) -> int:
    """Largest power of 2 dividing n (PyJuice's `max_cdf_power_of_2`)."""
    n = int(n)
    if n <= 0:
        raise BuildError(f"expected a positive integer, got {n}")
    return n & -n


def check_positive(**values: int) -> None:
    """BuildError for the first argument that is not a positive int."""
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise BuildError(f"{name} must be a positive integer, got {value!r}")


def random_rows(rng: np.random.Generator, rows: int, cols: int, dtype,
                uniform_perturbation: float | None = None) -> np.ndarray:
    """[rows, cols] random distributions (each row sums to 1), in `dtype`.

    Default: PyJuice's exp(-4 U). With `uniform_perturbation` p (Juice's
    `uniform_parameters(circuit; perturbation = p)`): uniform weights, each
    multiplied by 1 - p + 2 p U (up to +-p noise), renormalised."""
    u = rng.random((rows, cols))
    if uniform_perturbation is None:
        raw = np.exp(-PERTURBATION * u)
    else:
        p = float(uniform_perturbation)
        if not 0.0 <= p < 1.0:
            raise BuildError(f"uniform perturbation must lie in [0, 1), got {p}")
        raw = 1.0 - p + 2.0 * p * u
    raw /= raw.sum(axis=1, keepdims=True)
    return raw.astype(dtype, copy=False)


def block_sparse_weights(rng: np.random.Generator, pairs: np.ndarray, block_size: int,
                         num_parent_blocks: int, dtype) -> np.ndarray:
    """[E, B, B] random weights for block pairs, normalized per parent node
    over all its blocks."""
    raw = np.exp(-PERTURBATION * rng.random((len(pairs), block_size, block_size)))
    sums = np.zeros((num_parent_blocks, block_size))
    np.add.at(sums, pairs[:, 0], raw.sum(axis=2))
    raw /= sums[pairs[:, 0]][:, :, None]
    return raw.astype(dtype, copy=False)


def identity_blocks(num_blocks: int, block_size: int, dtype) -> np.ndarray:
    """[num_blocks, B, B] identity blocks: a pass-through's weights."""
    return np.broadcast_to(np.eye(block_size, dtype=dtype), (num_blocks, block_size, block_size)).copy()


def make_inputs(var: int, num_nodes: int, dist: str, num_cats: int, rng: np.random.Generator,
                dtype, name: str = "", tie: pcb.InputGroup | None = None,
                uniform_perturbation: float | None = None) -> pcb.InputGroup:
    """An input group over `var` with random parameters (or tied to `tie`);
    `uniform_perturbation` as in `random_rows` (discrete leaves only)."""
    up = uniform_perturbation
    if dist == "categorical":
        params = None if tie is not None else random_rows(rng, num_nodes, num_cats, dtype, up)
        leaf = pcb.Categorical(num_cats=num_cats, params=params)
    elif dist == "bernoulli":
        params = None if tie is not None else random_rows(rng, num_nodes, 2, dtype, up)[:, 1:]
        leaf = pcb.Bernoulli(params=params)
    elif dist == "gaussian":
        mean = std = None
        if tie is None:
            mean = rng.normal(0.0, 1.0, num_nodes).astype(dtype)
            std = rng.uniform(0.5, 1.5, num_nodes).astype(dtype)
        leaf = pcb.Gaussian(mean=mean, std=std)
    else:
        raise BuildError(f"input_dist must be one of {INPUT_DISTS}, got {dist!r}")
    return pcb.inputs(var, num_nodes, leaf, tie=tie, name=name)


@dataclass
class Layering:
    """Builds sums and products while tracking PyJuice's layer depths.

    `pyjuice_layers=False` turns off the pass-throughs and wrappers (the
    plain structure, as a paper draws it). In the structures here every
    pass-through bridges a gap of one layer, so a circuit built with them,
    rebuilt node for node in PyJuice, needs no further pass-through.
    """

    block_size: int
    rng: np.random.Generator
    dtype: type = np.float32
    pyjuice_layers: bool = True
    depth: dict = field(default_factory=dict)
    # None: PyJuice's exp(-4U) init of dense sums; else Juice's uniform
    # weights with this multiplicative perturbation (see `random_rows`).
    uniform_perturbation: float | None = None

    def of(self, group: pcb.Group) -> int:
        return self.depth.get(group.uid, 0)

    def multiply(self, *children: pcb.Group, name: str = "") -> pcb.ProductGroup:
        group = pcb.multiply(*children, name=name)
        self.depth[group.uid] = 1 + max(self.of(c) for c in children)
        return group

    def prepare_children(self, children: list[pcb.Group]) -> list[pcb.Group]:
        """The children a PyJuice sum really has: input children wrapped in a
        one-child product, shallow products behind a pass-through."""
        if not self.pyjuice_layers:
            return list(children)
        children = [self.multiply(c, name=f"{c.name}.wrap" if c.name else "")
                    if isinstance(c, pcb.InputGroup) else c for c in children]
        target = max(self.of(c) for c in children)
        out = []
        for c in children:
            if self.of(c) < target:
                c = self._pass_through(c, target)
            out.append(c)
        return out

    def _pass_through(self, child: pcb.Group, target: int) -> pcb.ProductGroup:
        bs = self.block_size if child.num_nodes % self.block_size == 0 else 1
        nb = child.num_nodes // bs
        diag = np.repeat(np.arange(nb, dtype=np.int64)[:, None], 2, axis=1)
        passed = pcb.summate(child, num_nodes=child.num_nodes, edges=pcb.BlockSparse(diag, bs),
                             weights=identity_blocks(nb, bs, self.dtype),
                             name=f"{child.name}.pass" if child.name else "")
        self.depth[passed.uid] = self.of(child)
        wrapper = pcb.multiply(passed, name=f"{child.name}.passprod" if child.name else "")
        self.depth[wrapper.uid] = target
        return wrapper

    def summate(self, children: list[pcb.Group], num_nodes: int, *,
                edges: pcb.BlockSparse | pcb.Sparse | None = None,
                tie: pcb.SumGroup | None = None, name: str = "") -> pcb.SumGroup:
        """A sum with random weights (dense unless `edges`), or tied to `tie`."""
        children = self.prepare_children(children)
        if tie is not None:
            group = pcb.summate(*children, num_nodes=num_nodes, edges=edges, tie=tie, name=name)
        elif edges is None:
            cols = sum(c.num_nodes for c in children)
            group = pcb.summate(*children, num_nodes=num_nodes, name=name,
                                weights=random_rows(self.rng, num_nodes, cols, self.dtype,
                                                    self.uniform_perturbation))
        elif isinstance(edges, pcb.BlockSparse):
            weights = block_sparse_weights(self.rng, np.asarray(edges.pairs), edges.block_size,
                                           num_nodes // edges.block_size, self.dtype)
            group = pcb.summate(*children, num_nodes=num_nodes, edges=edges, weights=weights,
                                name=name)
        else:
            raise BuildError("Layering.summate: sparse edges are not used by the structures")
        self.depth[group.uid] = max(self.of(c) for c in children)
        return group
