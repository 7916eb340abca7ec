"""Chow-Liu trees: exact mutual information against a brute-force table
count, and recovery of a known tree from data sampled along it."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from pccompiler.errors import DataError
from pccompiler.structures import chow_liu_tree, mutual_information, soft_binned_mutual_information
from pccompiler.structures.chow_liu import bin_data


def brute_force_mi(x: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """MI of every pair from a smoothed joint table counted with np.add.at."""
    n, v = x.shape
    out = np.zeros((v, v))
    for i in range(v):
        for j in range(v):
            if i != j:
                counts = np.zeros((k, k))
                np.add.at(counts, (x[:, i], x[:, j]), 1)
                p = (counts + alpha) / (n + alpha * k * k)
                out[i, j] = np.sum(p * np.log(p / p.sum(1, keepdims=True) / p.sum(0, keepdims=True)))
    return out


@pytest.mark.parametrize("k,alpha", [(2, 0.01), (3, 0.5), (5, 1.0)])
def test_mutual_information_matches_brute_force(k, alpha):
    rng = np.random.default_rng(k)
    x = rng.integers(0, k, size=(400, 7))
    x[:, 1] = (x[:, 0] + (rng.random(400) < 0.2)) % k        # a dependent pair
    mi = mutual_information(x, k, alpha=alpha)
    np.testing.assert_allclose(mi, brute_force_mi(x, k, alpha), atol=1e-12)
    assert mi[0, 1] == mi.max() and np.all(np.diag(mi) == 0)


def test_chunked_computation_equals_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(200, 11))
    whole = mutual_information(x, 3)
    monkeypatch.setattr("pccompiler.structures.chow_liu._CHUNK_ENTRIES", 20)   # 2 vars a chunk
    np.testing.assert_allclose(mutual_information(x, 3), whole, atol=1e-15)


def test_binning_of_many_valued_variables():
    x = np.array([[0, 255], [127, 128], [64, 191]])
    binned, k = bin_data(x, 256, 4)
    assert k == 4
    np.testing.assert_array_equal(binned, [[0, 3], [1, 2], [1, 2]])


def test_tree_recovered_from_samples_along_it():
    truth = nx.Graph([(0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (0, 6)])
    rng = np.random.default_rng(7)
    n = 5000
    x = np.zeros((n, 7), dtype=np.int64)
    x[:, 0] = rng.integers(0, 2, n)
    for parent, child in nx.bfs_edges(truth, 0):              # each child copies its parent
        flip = rng.random(n) < 0.1 + 0.05 * child              # with variable noise
        x[:, child] = x[:, parent] ^ flip
    tree = chow_liu_tree(x, 2)
    assert nx.is_tree(tree) and set(map(frozenset, tree.edges())) == set(map(frozenset, truth.edges()))


def test_constant_columns_still_give_one_spanning_tree():
    x = np.zeros((50, 6), dtype=np.int64)
    x[:, 2] = np.arange(50) % 2
    tree = chow_liu_tree(x, 2)
    assert nx.is_tree(tree) and tree.number_of_nodes() == 6


def test_bad_data_is_reported():
    with pytest.raises(DataError, match="2-D array"):
        mutual_information(np.zeros(5, dtype=int))
    with pytest.raises(DataError, match="row 1, column 0: category 3 >= num_cats=3"):
        mutual_information(np.array([[0, 1], [3, 0]]), 3)
    with pytest.raises(DataError, match="integer categories"):
        mutual_information(np.array([[0.5, 1.0]]))


def pyjuice_mi_by_definition(x: np.ndarray, num_bins: int, sigma: float, chunk: int) -> np.ndarray:
    """PyJuice's estimate written pair by pair in float64, per its study notes."""
    n, v = x.shape
    centres = np.linspace(0, 1, num_bins)
    scaled = np.empty_like(x, dtype=np.float64)
    for s in range(0, v, chunk):                      # chunk-global min/max scaling
        block = x[:, s:s + chunk].astype(np.float64)
        scaled[:, s:s + chunk] = (block - block.min()) / (block.max() - block.min() + 1e-8)
    w = np.exp(-0.5 * (scaled[:, :, None] - centres) ** 2 / sigma ** 2)          # [n, v, bins]
    marg = (w / w.sum(2, keepdims=True)).mean(0)
    h = -(marg * np.log(marg + 1e-4)).sum(1)
    out = np.zeros((v, v))
    for i in range(v):
        for j in range(v):
            joint = w[:, i, :].T @ w[:, j, :] / n
            joint /= joint.sum()
            out[i, j] = h[i] + h[j] + (joint * np.log(joint + 1e-4)).sum()
    return out


def test_soft_binned_estimate_matches_its_definition():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(300, 7))
    x[:, 3] = np.clip(x[:, 2] + rng.integers(-20, 20, 300), 0, 255)
    x[:, 5] = 17                                            # a constant pixel
    got = soft_binned_mutual_information(x, num_bins=8, sigma=0.1, chunk_size=3)
    np.testing.assert_allclose(got, pyjuice_mi_by_definition(x, 8, 0.1, 3), atol=2e-5)
    tree = chow_liu_tree(x, 256, estimator="pyjuice", num_bins=8)
    assert nx.is_tree(tree) and tree.has_edge(2, 3)


def _brute_force_tree_weights(w: np.ndarray) -> list[float]:
    """Total weight of every spanning tree of the complete graph, best first."""
    import itertools
    v = w.shape[0]
    out = []
    for edges in itertools.combinations(itertools.combinations(range(v), 2), v - 1):
        g = nx.Graph(list(edges))
        if g.number_of_nodes() == v and nx.is_tree(g):
            out.append(sum(w[a, b] for a, b in edges))
    return sorted(out, reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_spanning_trees_match_brute_force(seed):
    from pccompiler.structures.chow_liu import max_spanning_tree, top_k_spanning_trees
    rng = np.random.default_rng(seed)
    w = rng.random((5, 5))
    w = w + w.T
    np.fill_diagonal(w, 0.0)
    every = _brute_force_tree_weights(w)
    assert len(every) == 125                                     # Cayley: 5^3
    for k in (1, 20, 130):
        trees = top_k_spanning_trees(w, k)
        assert len(trees) == min(k, 125)
        weights = [sum(w[a, b] for a, b in t.edges()) for t in trees]
        assert all(nx.is_tree(t) and t.number_of_nodes() == 5 for t in trees)
        assert all(x >= y - 1e-12 for x, y in zip(weights, weights[1:]))     # non-increasing
        np.testing.assert_allclose(weights, every[:len(trees)], atol=1e-12)
        assert len({frozenset(map(frozenset, t.edges())) for t in trees}) == len(trees)
        assert set(map(frozenset, trees[0].edges())) == \
            set(map(frozenset, max_spanning_tree(w).edges()))
        assert all(t.edges[a, b]["mi"] == w[a, b] for t in trees for a, b in t.edges())
