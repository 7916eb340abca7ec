"""Standard structures: they lower to checked Models that normalize, match
PyJuice 2.6.3's edge counts (published numbers), and tie what they should."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends.reference import log_prob
from pccompiler.errors import BuildError
from pccompiler.structures import (edge_counts, hclt, hclt_num_edges, hidden_tree, hmm,
                                   hmm_num_edges, pd, pd_num_edges, rat_spn, rat_spn_num_edges)

F64 = np.float64


def all_assignments(num_vars: int, num_cats: int) -> np.ndarray:
    return np.array(list(itertools.product(range(num_cats), repeat=num_vars)), dtype=np.int64)


def total_probability(model) -> float:
    cats = max(v.num_cats for v in model.variables)
    return float(np.exp(log_prob(model, all_assignments(len(model.variables), cats))).sum())


def lowered(root):
    model = pc.lower(root)
    ir.check(model)
    return model


# ---------------------------------------------------------------- normalization

@pytest.mark.parametrize("name,build", [
    ("hclt", lambda: hclt(np.random.default_rng(0).integers(0, 3, (300, 6)), 4, 3, dtype=F64)),
    ("hclt-bernoulli", lambda: hclt(np.random.default_rng(1).integers(0, 2, (300, 7)), 3,
                                    input_dist="bernoulli", num_root_nodes=2, dtype=F64)),
    ("pd-dense", lambda: pd((2, 3), 4, 1, num_cats=3, dtype=F64)),
    ("pd-block-sparse", lambda: pd((2, 3), 4, 1, num_cats=3, max_prod_block_conns=1,
                                   block_size=2, dtype=F64)),
    ("rat_spn", lambda: rat_spn(6, 4, 2, 2, num_cats=3, dtype=F64, seed=3)),
    ("rat_spn-3-pieces", lambda: rat_spn(7, 2, 2, 2, num_pieces=3, num_cats=2, dtype=F64)),
    ("hmm", lambda: hmm(5, 4, 3, dtype=F64)),
    ("hmm-inhomogeneous", lambda: hmm(4, 3, 4, homogeneous=False, dtype=F64)),
])
def test_structure_lowers_checks_and_normalizes(name, build):
    model = lowered(build())
    assert total_probability(model) == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------- edge counts

def test_counters_match_lowered_models_at_small_sizes():
    tree = nx.random_labeled_tree(12, seed=4) if hasattr(nx, "random_labeled_tree") \
        else nx.random_tree(12, seed=4)
    cases = [
        (hidden_tree(tree, 6, 3), hclt_num_edges(tree, 6)),
        (pd((6, 4), 8, 2, num_cats=2), pd_num_edges((6, 4), 8, 2)),
        (pd((6, 4), 8, 2, num_cats=2, pyjuice_layers=False),
         pd_num_edges((6, 4), 8, 2, pyjuice_layers=False)),
        (pd((4, 4, 2), 4, (2, 2, 1), num_cats=2, max_prod_block_conns=2, block_size=2),
         pd_num_edges((4, 4, 2), 4, (2, 2, 1), max_prod_block_conns=2, block_size=2)),
        (rat_spn(13, 4, 3, 3, num_cats=2), rat_spn_num_edges(13, 4, 3, 3)),
        (hmm(6, 8, 5), hmm_num_edges(6, 8)),
        (hmm(6, 8, 5, pyjuice_layers=False), hmm_num_edges(6, 8, pyjuice_layers=False)),
    ]
    for root, expected in cases:
        assert edge_counts(lowered(root))["edges"] == expected


def test_pd_pass_throughs_are_where_pyjuice_puts_them():
    with_pass = edge_counts(pc.lower(pd((28, 28), 32, 7)))
    without = edge_counts(pc.lower(pd((28, 28), 32, 7, pyjuice_layers=False)))
    # PyJuice 2.6.3: 251,712 edges (0.25M), 20 pass-throughs of K*bs + K = 544 edges each.
    assert with_pass["edges"] == 251_712
    assert with_pass["edges"] - without["edges"] == 20 * (32 * 16 + 32)


def test_published_pyjuice_edge_counts():
    assert pd_num_edges((28, 28), 32, 7) == 251_712          # 0.25M
    assert pd_num_edges((28, 28), 128, 7) == 3_415_296       # 3.4M
    assert rat_spn_num_edges(784, 64, 6, 8) == 4_595_200      # 4.6M
    assert hmm_num_edges(32, 256) == 2_048_000                # 2.0M
    assert hmm_num_edges(32, 1024) == 32_571_392              # 32.6M


def _tree_with_inner_vertices(num_vars: int, inner: int) -> nx.Graph:
    """A path of `inner` vertices with the other vertices hung on its ends."""
    tree = nx.path_graph(inner)
    for leaf in range(inner, num_vars):
        tree.add_edge(leaf, 0 if leaf % 2 else inner - 1)
    return tree


def test_hclt_mnist_size_edge_counts():
    # PyJuice's published HCLT counts (784 vars x 256 cats) come from a tree
    # with 452 inner vertices; the edge count depends on the tree only.
    tree = _tree_with_inner_vertices(784, 452)
    model = pc.lower(hidden_tree(tree, 32, 256))
    counts = edge_counts(model)
    assert counts["edges"] == 501_376                         # 0.50M
    assert counts["edges"] == hclt_num_edges(tree, 32)
    assert hclt_num_edges(tree, 128) == 7_547_392             # 7.5M
    assert hclt_num_edges(tree, 512) == 118_859_776           # 118.9M
    assert model.tensors[0].dtype == ir.pcir.FLOAT32


# ---------------------------------------------------------------- HCLT

def test_hclt_follows_pyjuice_rooting_and_child_order():
    tree = nx.path_graph(5)                     # center = 2
    root = hidden_tree(tree, 2, 2)
    assert root.name == "z2" and root.num_nodes == 1
    (prod,) = root.children
    assert [c.name for c in prod.children] == ["z1", "z3", "x2"]
    assert [c.name for c in prod.children[0].children[0].children] == ["x0", "x1"]


def test_hclt_on_shipped_nltcs():
    from pccompiler.data import load_debd
    data = load_debd("nltcs", "train")
    root = hclt(data, 4, dtype=F64, seed=1)
    model = lowered(root)
    assert len(model.variables) == 16 and list(model.groups[-1].scope) == list(range(16))
    x = np.unpackbits(np.arange(2**16, dtype=">u2").view(np.uint8)).reshape(-1, 16)
    assert np.exp(log_prob(model, x.astype(np.int64))).sum() == pytest.approx(1.0, abs=1e-9)
    # Same data and seed: the same model, bit for bit.
    assert pc.lower(hclt(data, 4, dtype=F64, seed=1)).SerializeToString() == \
        model.SerializeToString()


def test_hclt_errors():
    with pytest.raises(BuildError, match="not a tree"):
        hidden_tree(nx.cycle_graph(4), 2, 2)
    with pytest.raises(BuildError, match="chow_liu_root 9"):
        hidden_tree(nx.path_graph(3), 2, 2, root=9)
    with pytest.raises(BuildError, match="num_latents must be a positive integer"):
        hclt(np.zeros((3, 3), dtype=int), 0)


# ---------------------------------------------------------------- HMM

def _forward_algorithm(initial, transition, emission, x):
    """log p(x) of an HMM by the textbook backward recursion, float64."""
    beta = emission[:, x[:, -1]].T                              # [B, K]
    for t in range(x.shape[1] - 2, -1, -1):
        beta = emission[:, x[:, t]].T * (beta @ transition.T)
    return np.log(beta @ initial)


def test_homogeneous_hmm_stores_one_transition_and_matches_forward_algorithm():
    seq, k, emits = 5, 3, 4
    model = lowered(hmm(seq, k, emits, dtype=F64, seed=2))
    table = ir.tensor_table(model)
    sums = [g for g in model.groups if g.kind == ir.pcir.SUM]
    inputs = [g for g in model.groups if g.kind == ir.pcir.INPUT]
    owners = [g for g in sums if g.sum.weights]
    assert len(owners) == 2                      # one transition matrix + the root
    assert sum(1 for g in inputs if g.input.params) == 1
    assert len(model.ties) == (seq - 2) + (seq - 1)
    transition = table[next(g.sum.weights for g in owners if g.num_nodes == k)]
    initial = table[next(g.sum.weights for g in owners if g.num_nodes == 1)][0]
    emission = table[next(g.input.params for g in inputs if g.input.params)]
    x = all_assignments(seq, emits)
    np.testing.assert_allclose(log_prob(model, x), _forward_algorithm(initial, transition,
                                                                      emission, x), atol=1e-12)


def test_inhomogeneous_hmm_has_no_ties():
    model = lowered(hmm(4, 2, 3, homogeneous=False))
    assert len(model.ties) == 0
    assert sum(1 for g in model.groups if g.kind == ir.pcir.INPUT) == 4


# ---------------------------------------------------------------- RAT-SPN / PD

def test_rat_spn_repetitions_share_inputs_and_seed_decides_splits():
    root = rat_spn(16, 2, 3, 4, num_cats=2)
    model = lowered(root)
    assert sum(1 for g in model.groups if g.kind == ir.pcir.INPUT) == 16
    assert len(root.children) == 4 and all(len(c.scope) == 16 for c in root.children)
    same = ir.structure_hash(pc.lower(rat_spn(16, 2, 3, 4, num_cats=2)))
    other = ir.structure_hash(pc.lower(rat_spn(16, 2, 3, 4, num_cats=2, seed=1)))
    assert ir.structure_hash(model) == same != other


def test_pd_block_size_and_random_product_choice():
    root = pd((4, 4), 64, 1, num_cats=2)       # K=64 -> block size 32; 6 products > 4
    sparse = [g for g in pc.lower(root).groups if g.sum.pattern == ir.pcir.BLOCK_SPARSE]
    assert sparse and {g.sum.block_size for g in sparse} == {32}
    with pytest.raises(BuildError, match="split_intervals"):
        pd((4, 4), 4, (1, 2, 3))
    with pytest.raises(BuildError, match="block_size 3 must divide"):
        pd((4, 4), 4, 2, block_size=3)


def _shallow_sum_children(root) -> int:
    """Children a PyJuice compile would put behind a pass-through: PyJuice's
    depth rule (input 0, product 1 + max child, sum max child) over our DAG."""
    from pccompiler.frontend.lowering import topological_groups
    depth, shallow = {}, 0
    for g in topological_groups(root):
        child_depths = [depth[id(c)] for c in g.children]
        if g.kind == "input":
            depth[id(g)] = 0
        elif g.kind == "product":
            depth[id(g)] = 1 + max(child_depths)
        else:
            depth[id(g)] = max(child_depths)
            shallow += sum(d < depth[id(g)] for d in child_depths)
    return shallow


def test_pyjuice_would_add_no_pass_through_to_our_circuits():
    assert _shallow_sum_children(pd((28, 28), 32, 7, pyjuice_layers=False)) == 20
    assert _shallow_sum_children(pd((28, 28), 32, 7)) == 0
    assert _shallow_sum_children(pd((12, 8), 4, (3, 2), max_prod_block_conns=2)) == 0
    assert _shallow_sum_children(rat_spn(37, 2, 4, 3, num_pieces=3, num_cats=2)) == 0
    assert _shallow_sum_children(hmm(7, 2, 3)) == 0


# ---------------------------------------------------------------- mixtures of HCLTs

def test_hclt_mixture_normalizes_and_matches_torch():
    from pccompiler.structures.chow_liu import mutual_information, top_k_spanning_trees
    from pccompiler.structures.hclt import pick_trees
    data = np.random.default_rng(5).integers(0, 2, (200, 6))
    data[:, 1] = data[:, 0] ^ (np.random.default_rng(6).random(200) < 0.2)
    root = hclt(data, 3, 2, num_trees=3, num_tree_candidates=7, alpha=0.1, init="uniform",
                dtype=F64, seed=2)
    # one root sum over the root products of 3 HCLTs (3 latents each)
    assert root.num_nodes == 1 and len(root.children) == 3
    assert sum(c.num_nodes for c in root.children) == 9
    model = lowered(root)
    assert total_probability(model) == pytest.approx(1.0, abs=1e-9)
    x = all_assignments(6, 2)
    compiled = pc.compile(model, backend="torch", device="cpu", dtype="float64")
    np.testing.assert_allclose(compiled.log_prob(x).numpy(), log_prob(model, x), atol=1e-9)
    # the trees are the candidates at ranks 1, 4, 7 of the top 7
    trees = pick_trees(top_k_spanning_trees(mutual_information(data, 2, alpha=0.1), 7), 7, 3)
    ranks = top_k_spanning_trees(mutual_information(data, 2, alpha=0.1), 7)
    def key(t):
        return frozenset(map(frozenset, t.edges()))
    assert [[key(r) for r in ranks].index(key(t)) for t in trees] == [0, 3, 6]
    assert [len(c.scope) for c in root.children] == [6, 6, 6]


def test_pick_trees_uses_the_papers_indices():
    from pccompiler.structures.hclt import pick_trees
    assert pick_trees(list(range(20)), 20, 4) == [0, 6, 13, 19]     # 1, 7, 14, 20 (1-based)
    assert pick_trees(list(range(3)), 20, 4) == [0, 2, 2, 2]        # fewer trees than asked


def test_hclt_one_tree_is_the_plain_hclt():
    from pccompiler.data import load_debd
    data = load_debd("nltcs", "train")
    plain = pc.lower(hclt(data, 4, seed=1)).SerializeToString()
    assert pc.lower(hclt(data, 4, seed=1, num_trees=1,
                         num_tree_candidates=1)).SerializeToString() == plain
    assert pc.lower(hidden_tree(pc.structures.chow_liu_tree(data, 2), 4, 2, seed=1)
                    ).SerializeToString() == plain


def test_uniform_init_is_perturbed_uniform():
    data = np.random.default_rng(0).integers(0, 3, (100, 5))
    model = lowered(hclt(data, 4, 3, init="uniform", perturbation=0.4, dtype=F64))
    p = 0.4
    for t in model.tensors:
        arr = ir.to_numpy(t)
        if arr.dtype != F64 or arr.ndim != 2:
            continue
        n = arr.shape[1]
        np.testing.assert_allclose(arr.sum(1), 1.0, atol=1e-12)
        assert arr.min() >= (1 - p) / ((1 + p) * (n - 1) + (1 - p)) - 1e-12
        assert arr.max() <= (1 + p) / ((1 - p) * (n - 1) + (1 + p)) + 1e-12
    with pytest.raises(BuildError, match="init"):
        hclt(data, 4, 3, init="gauss")
    with pytest.raises(BuildError, match="num_tree_candidates"):
        hclt(data, 4, 3, num_trees=3, num_tree_candidates=2)
