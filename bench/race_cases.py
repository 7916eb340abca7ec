"""The race's cases: which circuit, which data, and how much work it is.

Every case builds OUR Model (pccompiler.structures or the builder) with a
fixed seed; both libraries then run that Model (PyJuice through
pyjuice_bridge.py, with our parameters), so they compute the same
distribution on the same batches.

HCLT needs a Chow-Liu tree. The GPU machine gets only the repository, so
the tree is shipped: bench/data/hclt_mnist_tree.npy holds the 783 edges of
the tree that `pccompiler.structures.chow_liu_tree(.., 256, num_bins=32)`
learns from the 10,000 MNIST test images (/work/shared/data/mnist). It has
556 internal vertices, so the circuits have 0.61M / 9.26M / 146.2M edges at
latents 32 / 128 / 512 (PyJuice's reference figures, 0.50M / 7.5M / 118.9M,
come from a tree with 452 internal vertices that we cannot reproduce:
PyJuice's own MI code on these 10k images gives 551). Without the file the
tree is learned from fixed-seed random data (a note says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np

import pccompiler as pc
from pccompiler.ir import pcir

TREE_FILE = Path(__file__).resolve().parent / "data" / "hclt_mnist_tree.npy"
SEED = 0


@dataclass
class Case:
    """One race entry. `root()` builds the circuit with the builder API and
    `build()` lowers it to our Model; `num_cats` is the category count of
    every variable (data is uniform random below it); `pyjuice_block` caps
    PyJuice's block size (its own structures' choice); `kept_fraction` is
    set for the block-sparse scaling cases; `validate`: `lower` runs the IR
    checker."""
    name: str
    root: Callable[[], Any]
    num_cats: int
    pyjuice_block: int
    description: str
    kept_fraction: float | None = None
    notes: list[str] = field(default_factory=list)
    validate: bool = True

    def build(self) -> pcir.Model:
        return pc.lower(self.root(), validate=self.validate)


def _hclt_tree(notes: list[str]) -> nx.Graph:
    tree = nx.Graph()
    if TREE_FILE.exists():
        tree.add_edges_from(np.load(TREE_FILE).astype(np.int64).tolist())
        notes.append(f"tree: {TREE_FILE.name} (Chow-Liu of the MNIST test images)")
        return tree
    from pccompiler.structures import chow_liu_tree
    rng = np.random.default_rng(SEED)
    notes.append("tree: Chow-Liu of 2000 fixed-seed random rows (no shipped tree file)")
    return chow_liu_tree(rng.integers(0, 256, size=(2000, 784)), 256, num_bins=32)


def _hclt(latents: int, validate: bool = True) -> Case:
    notes: list[str] = []

    def root():
        return pc.hclt(None, latents, num_cats=256, tree=_hclt_tree(notes), seed=SEED)
    return Case(f"hclt{latents}", root, 256, 1024,
                f"HCLT, 784 vars x 256 cats, latents {latents}", notes=notes, validate=validate)


def _pd(latents: int, validate: bool = True) -> Case:
    def root():
        return pc.pd((28, 28), latents, split_intervals=7, num_cats=256, seed=SEED)
    return Case(f"pd{latents}", root, 256, 16 if latents <= 32 else 32,
                f"PD 28x28 x 256 cats, split intervals 7, latents {latents}", validate=validate)


def _rat_spn() -> Case:
    def root():
        return pc.rat_spn(784, 64, 6, 8, num_cats=256, seed=SEED)
    return Case("rat64", root, 256, 256, "RAT-SPN 784 vars x 256 cats, latents 64, depth 6, 8 reps")


def _hmm(latents: int) -> Case:
    def root():
        return pc.hmm(32, latents, 4096, seed=SEED)
    return Case(f"hmm{latents}", root, 4096, 1024,
                f"HMM length 32 x 4096 emits, {latents} latents (homogeneous, tied)")


# The block-sparse scaling case: 12,800 input nodes (one variable, 256 cats),
# one sum of 8,192 nodes over them in 32x32 blocks (104.9M edges when full),
# every parent block keeping the same number of random child blocks, then a
# 1-node root. Time should fall in proportion to the kept fraction.
BSP_INPUTS, BSP_SUMS, BSP_BLOCK = 12_800, 8_192, 32


def block_sparse_model(fraction: float, num_inputs: int = BSP_INPUTS, num_sums: int = BSP_SUMS,
                       block: int = BSP_BLOCK, num_cats: int = 256, seed: int = SEED) -> pcir.Model:
    """The lowered `block_sparse_root`."""
    return pc.lower(block_sparse_root(fraction, num_inputs, num_sums, block, num_cats, seed))


def block_sparse_root(fraction: float, num_inputs: int = BSP_INPUTS, num_sums: int = BSP_SUMS,
                      block: int = BSP_BLOCK, num_cats: int = 256, seed: int = SEED):
    """inputs -> one block-sparse sum keeping `fraction` of the blocks -> root."""
    rng = np.random.default_rng(seed)
    child_blocks, parent_blocks = num_inputs // block, num_sums // block
    keep = max(1, int(round(fraction * child_blocks)))
    chosen = np.argsort(rng.random((parent_blocks, child_blocks)), axis=1)[:, :keep]
    pairs = np.stack([np.repeat(np.arange(parent_blocks), keep), np.sort(chosen, axis=1).ravel()],
                     axis=1)
    weights = np.exp(-4.0 * rng.random((len(pairs), block, block), dtype=np.float32))
    x = pc.inputs(0, num_inputs, pc.Categorical(num_cats=num_cats), seed=seed)
    big = pc.summate(x, num_nodes=num_sums, edges=pc.BlockSparse(pairs, block), weights=weights,
                     normalize=True)
    return pc.summate(big, num_nodes=1, seed=seed + 1)


def _block_sparse(fraction: float) -> Case:
    edges = int(round(fraction * (BSP_INPUTS // BSP_BLOCK))) * (BSP_SUMS // BSP_BLOCK) * BSP_BLOCK ** 2
    return Case(f"bsp{int(round(fraction * 100)):03d}", lambda: block_sparse_root(fraction), 256,
                BSP_BLOCK, f"one block-sparse sum, {edges / 1e6:.1f}M edges "
                f"({fraction:.2f} of {BSP_INPUTS}x{BSP_SUMS}, blocks {BSP_BLOCK})",
                kept_fraction=fraction)


def case_for(structure: str, latents: int, validate: bool = True) -> Case:
    """The HCLT or PD case at any latent count (bench/scale.py's sweep);
    validate=False skips `ir.check` in `lower` (a quarter of the build of
    a circuit the structure builder made)."""
    makers = {"hclt": _hclt, "pd": _pd}
    if structure not in makers:
        raise SystemExit(f"unknown structure {structure!r}; choose one of {', '.join(makers)}")
    return makers[structure](int(latents), validate)


def all_cases() -> dict[str, Case]:
    cases = [_hclt(32), _hclt(128), _hclt(512), _pd(32), _pd(128), _rat_spn(), _hmm(256),
             _hmm(1024)] + [_block_sparse(f) for f in (1.0, 0.5, 0.25, 0.1)]
    return {c.name: c for c in cases}


# Groups of cases for --cases (besides single names).
CASE_GROUPS = {
    "all": None,
    "structures": ["hclt32", "hclt128", "hclt512", "pd32", "pd128", "rat64", "hmm256", "hmm1024"],
    "hclt": ["hclt32", "hclt128", "hclt512"], "pd": ["pd32", "pd128"],
    "hmm": ["hmm256", "hmm1024"], "bsp": ["bsp100", "bsp050", "bsp025", "bsp010"],
}


def select_cases(spec: str) -> list[Case]:
    """Cases named by a comma list of case names and group names."""
    cases = all_cases()
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in CASE_GROUPS:
            names += CASE_GROUPS[item] or list(cases)
        elif item in cases:
            names.append(item)
        else:
            raise SystemExit(f"race: unknown case {item!r}; cases: {', '.join(cases)}; "
                             f"groups: {', '.join(CASE_GROUPS)}")
    return [cases[n] for n in dict.fromkeys(names)]


def quick_case() -> Case:
    """A small case for --quick (a few seconds per library)."""
    def root():
        return pc.hmm(8, 64, 256, seed=SEED)
    return Case("quick-hmm64", root, 256, 1024, "HMM length 8 x 256 emits, 64 latents (smoke test)")


@dataclass
class Work:
    """What one batch costs, for the roofline line.

    flops: 2 x (sum + product edges) x batch forward; training counts 3x
    (forward + a backward of about twice the forward).
    bytes: every node value written once and read once (4 B x batch x
    nodes x 2) plus the parameters read (4 B each) forward; training counts
    3x that plus the parameter flows (written and read) and the EM update
    (parameters read and written): + 16 B per parameter.
    """
    edges: int
    sum_edges: int
    nodes: int
    params: int

    def forward(self, batch: int) -> tuple[float, float]:
        flops = 2.0 * self.edges * batch
        bytes_ = 4.0 * batch * self.nodes * 2 + 4.0 * self.params
        return flops, bytes_

    def train(self, batch: int) -> tuple[float, float]:
        flops, bytes_ = self.forward(batch)
        return 3 * flops, 3 * bytes_ + 16.0 * self.params


def work_of(model: pcir.Model) -> Work:
    from pccompiler.structures import edge_counts
    c = edge_counts(model)
    return Work(edges=c["edges"], sum_edges=c["sum_edges"], nodes=c["nodes"],
                params=c["sum_params"] + c["input_params"])
