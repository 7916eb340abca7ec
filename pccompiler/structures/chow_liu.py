"""Chow-Liu trees: the maximum spanning tree of pairwise mutual information.

HCLT's backbone. Mutual information is computed from exact joint counts of
every pair of (binned) categorical variables, vectorized: the joint count
table of variables i and j is a block of one matrix product of one-hot
encodings, computed a chunk of variables at a time so memory stays bounded.
Category 0 of each variable is left out of the one-hot matrix and its counts
are recovered from the marginals, which halves the work on binary data.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from pccompiler.errors import DataError

# Entries of a chunk's joint-count block [chunk, V, K-1, K-1] kept in memory.
_CHUNK_ENTRIES = 1 << 25


def bin_data(data: np.ndarray, num_cats: int, num_bins: int | None) -> tuple[np.ndarray, int]:
    """Map categories 0..num_cats-1 to num_bins equal-width bins (none when
    num_bins is None or >= num_cats). Returns (binned int array, K)."""
    if num_bins is None or num_bins >= num_cats:
        return data, num_cats
    if num_bins < 2:
        raise DataError(f"num_bins must be >= 2, got {num_bins}")
    return (data.astype(np.int64) * num_bins) // num_cats, num_bins


def mutual_information(data: np.ndarray, num_cats: int | None = None, *, alpha: float = 0.01,
                       num_bins: int | None = None) -> np.ndarray:
    """Pairwise mutual information (nats) of the columns of `data`.

    data: int array [N, V] of categories in [0, num_cats) (default: max + 1).
    alpha: Laplace pseudo-count added to every cell of each pair's joint
    table (the marginals are those of the smoothed joint), so MI is finite
    and >= 0. num_bins: bin many-valued variables (e.g. 256 pixel levels) to
    this many equal-width bins first. Returns float64 [V, V], zero diagonal.
    """
    data = _as_categories(data, num_cats)
    num_cats = int(data.max()) + 1 if num_cats is None else int(num_cats)
    data, k = bin_data(data, max(num_cats, 2), num_bins)
    k = max(k, 2)
    n, v = data.shape
    # One-hot of categories 1..k-1: column i*(k-1) + (c-1). Counts are
    # integers, exact in float32 below 2**24 rows (float64 beyond).
    onehot = np.zeros((n, v * (k - 1)), dtype=np.float32 if n < 2**24 else np.float64)
    rows, cols = np.nonzero(data > 0)
    onehot[rows, cols * (k - 1) + data[rows, cols] - 1] = 1.0
    marg = np.stack([np.count_nonzero(data == c, axis=0) for c in range(k)], axis=1)  # [V, k]
    marg = marg.astype(np.float64)

    # MI = H(i) + H(j) - H(i, j) of the smoothed tables; the marginal
    # entropies are computed once, so each pair costs one log per cell.
    total = n + alpha * k * k
    p_marg = (marg + alpha * k) / total                                               # [V, k]
    entropy = -np.sum(p_marg * np.log(p_marg), axis=1)                                # [V]
    mi = np.zeros((v, v), dtype=np.float64)
    chunk = max(1, _CHUNK_ENTRIES // max(1, v * k * k))
    for start in range(0, v, chunk):
        stop = min(v, start + chunk)
        cols = onehot[:, start * (k - 1):]
        block = onehot[:, start * (k - 1):stop * (k - 1)].T @ cols
        p = _joint_counts(block.astype(np.float64), marg, start, stop, n, k)          # [c, V', k, k]
        p += alpha
        p /= total
        joint_entropy = -np.sum(p * np.log(p), axis=(2, 3))                           # [c, V']
        mi_block = entropy[start:stop, None] + entropy[None, start:] - joint_entropy
        mi[start:stop, start:] = mi_block
        mi[start:, start:stop] = mi_block.T
    np.fill_diagonal(mi, 0.0)
    return np.maximum(mi, 0.0)


def _joint_counts(block: np.ndarray, marg: np.ndarray, start: int, stop: int, n: int,
                  k: int) -> np.ndarray:
    """Full joint tables [c, V', k, k] from the products of categories >= 1.

    n(a, 0) = n_i(a) - sum_{b>0} n(a, b); n(0, b) likewise; n(0, 0) is what
    is left of N.
    """
    c, w = stop - start, block.shape[1] // (k - 1)
    inner = block.reshape(c, k - 1, w, k - 1).transpose(0, 2, 1, 3)                 # [c, V', a, b]
    joint = np.empty((c, w, k, k), dtype=np.float64)
    joint[:, :, 1:, 1:] = inner
    joint[:, :, 1:, 0] = marg[start:stop, None, 1:] - inner.sum(axis=3)
    joint[:, :, 0, 1:] = marg[None, start:, 1:] - inner.sum(axis=2)
    joint[:, :, 0, 0] = n - joint[:, :, 1:, :].sum(axis=(2, 3)) - joint[:, :, 0, 1:].sum(axis=2)
    return joint


def soft_binned_mutual_information(data: np.ndarray, num_bins: int = 32, sigma: float = 0.5 / 32,
                                   chunk_size: int = 64) -> np.ndarray:
    """PyJuice 2.6.3's mutual-information estimate (its HCLT default), float32.

    Reimplemented from its description (docs/notes/pyjuice-study.md) so that
    `hclt(..., mi_estimator="pyjuice")` learns the tree PyJuice learns from
    the same data: each chunk of `chunk_size` columns is min-max scaled to
    [0, 1] with the chunk's global min and max; every value is spread over
    `num_bins` evenly spaced bin centres with unnormalized Gaussian weights
    of width `sigma`; the joint of a pair is the batch mean of the weight
    products, normalized per pair; marginals average the per-sample
    normalized weights; entropies use -sum p log(p + 1e-4). Floating-point
    rounding can differ from PyJuice's GPU run, so near-ties may break
    differently.
    """
    arr = np.asarray(data.numpy() if hasattr(data, "numpy") else data, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise DataError(f"data must be a 2-D array [rows, vars], got shape {list(arr.shape)}")
    n, v = arr.shape
    centres = np.linspace(0.0, 1.0, num_bins, dtype=np.float32)
    chunks = [(s, min(v, s + chunk_size)) for s in range(0, v, chunk_size)]
    weights, entropies = [], []
    for s, e in chunks:
        x = arr[:, s:e]
        x = (x - x.min()) / (x.max() - x.min() + np.float32(1e-8))
        w = np.exp(np.float32(-0.5) * (x[:, :, None] - centres) ** 2 / np.float32(sigma ** 2))
        marg = (w / w.sum(axis=2, keepdims=True)).mean(axis=0)                       # [c, bins]
        entropies.append(-(marg * np.log(marg + np.float32(1e-4))).sum(axis=1))
        weights.append(w.reshape(n, -1))
    mi = np.zeros((v, v), dtype=np.float32)
    for a, (s1, e1) in enumerate(chunks):
        for b in range(a, len(chunks)):
            s2, e2 = chunks[b]
            joint = (weights[a].T @ weights[b] / np.float32(n)).reshape(e1 - s1, num_bins,
                                                                         e2 - s2, num_bins)
            joint /= joint.sum(axis=(1, 3), keepdims=True)
            h12 = -(joint * np.log(joint + np.float32(1e-4))).sum(axis=(1, 3))
            block = entropies[a][:, None] + entropies[b][None, :] - h12
            mi[s1:e1, s2:e2] = block
            mi[s2:e2, s1:e1] = block.T
    return mi


def chow_liu_tree(data: np.ndarray, num_cats: int | None = None, *, alpha: float = 0.01,
                  num_bins: int | None = None, estimator: str = "counts") -> nx.Graph:
    """The Chow-Liu tree of `data`: an undirected networkx tree over the
    variables 0..V-1 whose edges (with attribute `mi`) maximize the total
    pairwise mutual information. Every pair is a candidate edge, including
    pairs with zero MI (constant pixels), so the result is always one tree.

    estimator: "counts" (exact smoothed tables, `mutual_information`) or
    "pyjuice" (`soft_binned_mutual_information` with PyJuice's defaults;
    num_bins, when given, replaces its 32 bins).
    """
    if estimator == "counts":
        mi = mutual_information(data, num_cats, alpha=alpha, num_bins=num_bins)
    elif estimator == "pyjuice":
        mi = soft_binned_mutual_information(_as_categories(data, num_cats), num_bins or 32)
    else:
        raise DataError(f"unknown MI estimator {estimator!r}; expected 'counts' or 'pyjuice'")
    return max_spanning_tree(mi)


def max_spanning_tree(mi: np.ndarray) -> nx.Graph:
    """Maximum spanning tree of a symmetric weight matrix, as PyJuice finds
    it: networkx Kruskal minimum spanning tree over weights -mi[u, v], edges
    inserted for u < v (so equal weights break ties the same way)."""
    v = mi.shape[0]
    iu, ju = np.triu_indices(v, k=1)
    graph = nx.Graph()
    graph.add_nodes_from(range(v))
    graph.add_weighted_edges_from(zip(iu.tolist(), ju.tolist(), (-mi[iu, ju]).tolist()))
    tree = nx.minimum_spanning_tree(graph, algorithm="kruskal")
    for a, b, attrs in tree.edges(data=True):
        attrs["mi"] = -attrs.pop("weight")
    return tree


def _as_categories(data, num_cats: int | None) -> np.ndarray:
    """Validate data as a non-negative int array [N, V] below num_cats."""
    arr = np.asarray(data.numpy() if hasattr(data, "numpy") else data)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(f"data must be a 2-D array [rows, vars], got shape {list(arr.shape)}")
    if arr.dtype.kind not in "iub":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"data must hold integer categories, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    low = int(arr.min())
    if low < 0:
        row, col = np.argwhere(arr < 0)[0]
        raise DataError(f"data row {row}, column {col}: negative category {arr[row, col]}")
    if num_cats is not None and int(arr.max()) >= num_cats:
        row, col = np.argwhere(arr >= num_cats)[0]
        raise DataError(f"data row {row}, column {col}: category {arr[row, col]} >= num_cats={num_cats}")
    return arr


def top_k_spanning_trees(weights: np.ndarray, k: int) -> list[nx.Graph]:
    """The k maximum-weight spanning trees of the complete graph with edge
    weights `weights` (symmetric [V, V]), best first (non-increasing total
    weight; fewer when the graph has fewer spanning trees).

    Lawler's partition scheme as used for spanning trees by Yamada et al.
    ("Listing all the minimum spanning trees in an undirected graph"): a
    subproblem is (edges forced in, edges forced out) with its best tree T;
    popping the best subproblem emits T and splits the rest of its trees by
    the first free edge of T they lack: child i forces in T's free edges
    1..i-1 and forces out free edge i. The best tree of child i is T minus
    edge i plus the heaviest allowed edge across the cut that removal leaves
    (T is optimal for its parent, and forcing edges of T in keeps it so), so
    no constrained spanning-tree search is needed. The first tree is
    `max_spanning_tree(weights)` (same tie-breaking as `chow_liu_tree`).
    Edges carry the attribute `mi` (their weight).
    """
    import heapq

    w = np.asarray(weights, dtype=np.float64)
    v = w.shape[0]
    if k < 1:
        raise DataError(f"top_k_spanning_trees: k must be >= 1, got {k}")
    first = max_spanning_tree(w)
    if v < 2:
        return [first]

    def key(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    def total(edges) -> float:
        return float(sum(w[a, b] for a, b in edges))

    edges0 = frozenset(key(a, b) for a, b in first.edges())
    counter = 0
    # heap of (-weight, tie counter, tree edges, forced in, forced out)
    heap = [(-total(edges0), counter, edges0, frozenset(), frozenset())]
    out: list[nx.Graph] = []
    upper = np.triu(np.ones((v, v), dtype=bool), k=1)
    while heap and len(out) < k:
        _, _, edges, forced_in, forced_out = heapq.heappop(heap)
        tree = nx.Graph()
        tree.add_nodes_from(range(v))
        tree.add_edges_from((a, b, {"mi": float(w[a, b])}) for a, b in sorted(edges))
        out.append(tree)
        if len(out) == k:
            break
        allowed = upper.copy()
        for a, b in forced_out:
            allowed[a, b] = False
        inside = set(forced_in)
        for e in sorted(edges - forced_in):
            allowed[e] = False                      # child forces e out
            tree.remove_edge(*e)
            side = np.zeros(v, dtype=bool)
            side[list(nx.node_connected_component(tree, e[0]))] = True
            tree.add_edge(*e, mi=float(w[e]))
            crossing = allowed & (side[:, None] != side[None, :])
            if crossing.any():
                cand = np.where(crossing, w, -np.inf)
                a, b = np.unravel_index(int(np.argmax(cand)), cand.shape)
                child = (edges - {e}) | {key(int(a), int(b))}
                counter += 1
                heapq.heappush(heap, (-total(child), counter, frozenset(child),
                                      frozenset(inside), forced_out | {e}))
            allowed[e] = True                       # later children force e in
            inside.add(e)
    return out
