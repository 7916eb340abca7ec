"""Hidden Chow-Liu trees (HCLT; Liu & Van den Broeck, NeurIPS 2021).

A Chow-Liu tree over the observed variables X_v becomes a tree of latent
variables Z_v with `num_latents` states, each emitting its X_v. As a circuit
(built group by group in the same order and shape as PyJuice 2.6.3's
`HCLT` / `BayesianTreeToHiddenRegionGraph`):

- a leaf vertex v of the rooted tree: one input group over X_v (K nodes);
- an inner vertex v: a product group multiplying, one-to-one, the groups of
  v's children (in breadth-first successor order) and a fresh input group
  over X_v, then a dense K x K sum group (the root's sum has
  `num_root_nodes` nodes, default 1).

Edges (PyJuice's count, product edges included), n variables, I inner
vertices: (I - 1) K^2 + K * num_root_nodes + K (n - 1 + I).

A mixture of HCLTs (`num_trees` > 1, the protocol of Liu & Van den Broeck's
released code for "Tractable Regularization of Probabilistic Circuits"): the
top `num_tree_candidates` maximum spanning trees of the mutual information
are listed (`top_k_spanning_trees`), `num_trees` of them are taken at the
1-based indices round(linspace(1, candidates, num_trees)), each becomes an
HCLT rooted at its graph center, and one root sum mixes the root products of
all of them (the children of every tree's root sum).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from pccompiler.frontend import builder as pcb
from pccompiler.errors import BuildError, DataError
from pccompiler.structures.chow_liu import (_as_categories, max_spanning_tree,
                                            mutual_information, soft_binned_mutual_information,
                                            top_k_spanning_trees)
from pccompiler.structures.common import (INPUT_DISTS, Layering, check_positive, make_inputs,
                                          max_pow2_divisor, random_rows)

# Bins for the mutual-information estimate of many-valued variables.
DEFAULT_MI_BINS = 16


def hclt(data: np.ndarray | None, num_latents: int, num_cats: int | None = None, *,
         tree: nx.Graph | None = None, chow_liu_root: int | None = None,
         input_dist: str = "categorical", num_root_nodes: int = 1, alpha: float = 0.01,
         num_bins: int | None = None, mi_estimator: str = "counts", seed: int = 0,
         dtype: type = np.float32, num_trees: int = 1, num_tree_candidates: int | None = None,
         init: str = "pyjuice", perturbation: float = 0.4) -> pcb.SumGroup:
    """Build an HCLT and return its root sum group (lower it with `pc.lower`).

    data: int array [rows, vars] the Chow-Liu tree is learned from (ignored
        when `tree` is given; then it may be None).
    num_latents: K, the states of every latent variable (nodes per group).
    num_cats: categories of every variable for categorical leaves (default:
        data max + 1; 2 for bernoulli leaves; ignored for gaussian).
    tree: a ready undirected tree over 0..n-1 (networkx), skipping learning.
    chow_liu_root: the vertex to root the tree at (default: PyJuice's choice,
        `nx.center(tree)[0]`).
    input_dist: "categorical", "bernoulli" or "gaussian".
    num_root_nodes: nodes of the root sum (PyJuice's num_root_ns).
    mi_estimator: "counts" (exact smoothed joint tables, Laplace pseudo-count
        `alpha`; variables with more than `num_bins` categories, default 16,
        are binned into that many equal-width bins first) or "pyjuice"
        (PyJuice's soft-binned estimate, `num_bins` default 32), which learns
        the tree PyJuice would from the same data (up to float rounding of
        near-ties; about 3 minutes for 10k MNIST images on 2 CPU cores).
    seed: random parameters come from it.
    dtype: float dtype of every parameter array.
    num_trees, num_tree_candidates: a mixture of `num_trees` HCLTs over trees
        picked evenly from the top `num_tree_candidates` (default num_trees)
        maximum spanning trees (module docstring); 1 and 1: the plain HCLT.
        `tree` and `chow_liu_root` apply to the plain HCLT only.
    init: "pyjuice" (PyJuice's exp(-4U), normalised) or "uniform" (Juice's
        `uniform_parameters(perturbation=perturbation)`: uniform weights times
        1 - p + 2pU, renormalised) for sums and discrete leaves.
    """
    check_positive(num_latents=num_latents, num_root_nodes=num_root_nodes, num_trees=num_trees)
    candidates = num_trees if num_tree_candidates is None else num_tree_candidates
    check_positive(num_tree_candidates=candidates)
    if candidates < num_trees:
        raise BuildError(f"hclt: num_tree_candidates ({candidates}) < num_trees ({num_trees})")
    if input_dist not in INPUT_DISTS:
        raise BuildError(f"hclt: input_dist must be one of {INPUT_DISTS}, got {input_dist!r}")
    if init not in ("pyjuice", "uniform"):
        raise BuildError(f"hclt: init must be 'pyjuice' or 'uniform', got {init!r}")
    up = None if init == "pyjuice" else float(perturbation)
    mixture = candidates > 1
    if mixture and tree is not None:
        raise BuildError("hclt: a mixture of trees is learned from data; do not pass `tree`")
    if tree is None:
        mi, num_cats = _learn_mi(data, input_dist, num_cats, alpha, num_bins, mi_estimator)
        if mixture:
            trees = pick_trees(top_k_spanning_trees(mi, candidates), candidates, num_trees)
        else:
            tree = max_spanning_tree(mi)
    if input_dist == "bernoulli":
        num_cats = 2
    elif input_dist == "categorical" and num_cats is None:
        raise BuildError("hclt: num_cats is needed for categorical leaves when a tree is given")
    if not mixture:
        return hidden_tree(tree, num_latents, num_cats or 0, root=chow_liu_root,
                           input_dist=input_dist, num_root_nodes=num_root_nodes, seed=seed,
                           dtype=dtype, uniform_perturbation=up)
    rng = np.random.default_rng(seed)
    layers = Layering(block_size=max_pow2_divisor(num_latents), rng=rng, dtype=dtype,
                      uniform_perturbation=up)
    prods = [_hidden_tree_product(t, num_latents, num_cats or 0, None, input_dist, layers,
                                  prefix=f"t{i}.") for i, t in enumerate(trees)]
    # One root sum over every tree's root product (no pass-throughs: the
    # trees differ in depth, and EM would touch a pass-through's identity).
    cols = sum(p.num_nodes for p in prods)
    return pcb.summate(*prods, num_nodes=num_root_nodes, name="mix",
                       weights=random_rows(rng, num_root_nodes, cols, dtype, up))


def pick_trees(trees: list[nx.Graph], candidates: int, num_trees: int) -> list[nx.Graph]:
    """Trees at the 1-based indices round(linspace(1, candidates, num_trees))
    (round half to even, like Julia's `round`), clipped to the trees listed."""
    idx = np.round(np.linspace(1, candidates, num_trees)).astype(int) - 1
    return [trees[min(int(i), len(trees) - 1)] for i in idx]


def _learn_mi(data, input_dist: str, num_cats: int | None, alpha: float,
              num_bins: int | None, estimator: str) -> tuple[np.ndarray, int | None]:
    """Pairwise MI of `data` (and num_cats inferred for categorical leaves)."""
    if data is None:
        raise DataError("hclt: pass `data` to learn the Chow-Liu tree from, or a `tree`")
    if estimator == "pyjuice":
        # PyJuice's estimate scales values to [0, 1]: real-valued data is fine.
        arr = np.asarray(data.numpy() if hasattr(data, "numpy") else data)
        if input_dist == "categorical":
            arr = _as_categories(arr, num_cats)
            num_cats = int(arr.max()) + 1 if num_cats is None else num_cats
        return soft_binned_mutual_information(arr, num_bins or 32), num_cats
    if estimator != "counts":
        raise DataError(f"hclt: unknown mi_estimator {estimator!r}; expected 'counts' or 'pyjuice'")
    try:
        arr = _as_categories(data, None if input_dist == "gaussian" else num_cats)
    except DataError as exc:
        raise DataError(f"{exc} (for real-valued data use mi_estimator='pyjuice')") from None
    mi_cats = int(arr.max()) + 1 if num_cats is None else num_cats
    if num_cats is None and input_dist == "categorical":
        num_cats = mi_cats
    bins = num_bins or DEFAULT_MI_BINS
    mi = mutual_information(arr, mi_cats, alpha=alpha, num_bins=bins if mi_cats > bins else None)
    return mi, num_cats


def tree_order(tree: nx.Graph, root: int | None = None) -> tuple[int, list[int], dict[int, list[int]]]:
    """(root, post-order of vertices, children per vertex) exactly as PyJuice
    walks the tree: center root, `dfs_postorder_nodes`, `bfs_tree` successors."""
    if tree.number_of_nodes() == 0:
        raise BuildError("hclt: the tree has no vertices")
    if not nx.is_tree(tree):
        raise BuildError(f"hclt: the graph is not a tree ({tree.number_of_nodes()} vertices, "
                         f"{tree.number_of_edges()} edges, connected={nx.is_connected(tree)})")
    if root is None:
        root = nx.center(tree)[0]
    elif root not in tree:
        raise BuildError(f"hclt: chow_liu_root {root} is not a vertex of the tree")
    rooted = nx.bfs_tree(tree, root)
    children = {v: list(rooted.successors(v)) for v in rooted.nodes}
    return root, list(nx.dfs_postorder_nodes(tree, root)), children


def hidden_tree(tree: nx.Graph, num_latents: int, num_cats: int, *, root: int | None = None,
                input_dist: str = "categorical", num_root_nodes: int = 1, seed: int = 0,
                dtype: type = np.float32,
                uniform_perturbation: float | None = None) -> pcb.SumGroup:
    """The HCLT circuit of a given tree (see the module docstring);
    `uniform_perturbation` (None: PyJuice's init) as in `common.random_rows`."""
    rng = np.random.default_rng(seed)
    layers = Layering(block_size=max_pow2_divisor(num_latents), rng=rng, dtype=dtype,
                      uniform_perturbation=uniform_perturbation)
    prod = _hidden_tree_product(tree, num_latents, num_cats, root, input_dist, layers)
    return layers.summate([prod], num_root_nodes, name=prod.name.replace("p", "z", 1))


def _hidden_tree_product(tree: nx.Graph, num_latents: int, num_cats: int, root: int | None,
                         input_dist: str, layers: Layering, prefix: str = "") -> pcb.ProductGroup:
    """The HCLT of `tree` up to (not including) its root sum: the root's
    product group. Parameters are drawn from `layers.rng` in the order the
    circuit is built."""
    root, order, children = tree_order(tree, root)
    if not children[root]:
        raise BuildError("hclt: the tree needs at least two variables")
    rng, dtype, up = layers.rng, layers.dtype, layers.uniform_perturbation
    group_of: dict[int, pcb.Group] = {}
    for v in order:
        leaf = make_inputs(v, num_latents, input_dist, num_cats, rng, dtype, name=f"{prefix}x{v}",
                           uniform_perturbation=up)
        if not children[v]:
            group_of[v] = leaf
            continue
        prod = layers.multiply(*[group_of.pop(c) for c in children[v]], leaf,
                               name=f"{prefix}p{v}")
        if v == root:
            return prod
        group_of[v] = layers.summate([prod], num_latents, name=f"{prefix}z{v}")
    raise AssertionError("the root comes last in post-order")


def hclt_num_edges(tree: nx.Graph, num_latents: int, num_root_nodes: int = 1) -> int:
    """PyJuice's edge count of the HCLT of `tree` (no circuit is built)."""
    n = tree.number_of_nodes()
    root, _, children = tree_order(tree)
    inner = sum(1 for v in children if children[v])
    k = num_latents
    return (inner - 1) * k * k + k * num_root_nodes + k * (n - 1 + inner)
