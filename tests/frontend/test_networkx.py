"""networkx interop: node-level DAGs in and out, compared through the
reference backend's log-likelihoods, and the errors that name the node."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends import reference as ref
from pccompiler.errors import BuildError
from tests.reference.random_circuits import all_assignments, random_circuit

pcir = ir.pcir


def hand_written() -> nx.DiGraph:
    """0.3 * [x0 ~ (.2,.8)] [x1 ~ Cat(.1,.6,.3)] + 0.7 * [x0 ~ (.9,.1)] * mix(x1)."""
    G = nx.DiGraph()
    G.add_node("root", kind="sum")
    G.add_node("p1", kind="product")
    G.add_node("p2", kind="product")
    G.add_node("a1", kind="input", var=0, dist="bernoulli", params=[0.8])
    G.add_node("a2", kind="input", var=0, dist="bernoulli", params=[0.1])
    G.add_node("c1", kind="input", var=1, dist="categorical", params=[.1, .6, .3])
    G.add_node("c2", kind="input", var=1, dist="categorical", params=[.5, .25, .25])
    G.add_node("m", kind="sum")
    G.add_edges_from([("root", "p1", {"weight": 0.3}), ("root", "p2", {"weight": 0.7}),
                      ("p1", "a1"), ("p1", "c1"), ("p2", "a2"), ("p2", "m"),
                      ("m", "c1", {"weight": 0.4}), ("m", "c2", {"weight": 0.6})])
    return G


def hand_written_prob(x0: int, x1: int) -> float:
    c1, c2 = [.1, .6, .3][x1], [.5, .25, .25][x1]
    a1, a2 = (0.8 if x0 else 0.2), (0.1 if x0 else 0.9)
    return 0.3 * a1 * c1 + 0.7 * a2 * (0.4 * c1 + 0.6 * c2)


def test_hand_written_circuit_matches_its_formula():
    model = pc.from_networkx(hand_written())
    x = all_assignments((2, 3))
    want = np.log([hand_written_prob(a, b) for a, b in x])
    np.testing.assert_allclose(ref.log_prob(model, x), want, rtol=0, atol=1e-12)
    assert [v.kind for v in model.variables] == [pcir.BINARY, pcir.CATEGORICAL]
    assert model.groups[model.roots[0]].num_nodes == 1


def test_grouping_collects_nodes_of_one_role():
    model = pc.from_networkx(hand_written())
    sizes = sorted((g.kind, g.num_nodes) for g in model.groups)
    # inputs: {a1,a2}, {c1,c2}; products {p1,p2} differ in child groups; sums m and root
    assert sizes == sorted([(pcir.INPUT, 2), (pcir.INPUT, 2), (pcir.PRODUCT, 1),
                            (pcir.PRODUCT, 1), (pcir.SUM, 1), (pcir.SUM, 1)])


@pytest.mark.parametrize("pattern", ["dense", "block_sparse", "sparse"])
def test_round_trip_through_networkx(pattern):
    cats = (3, 2, 2, 3)
    model = pc.lower(random_circuit(2, pattern, cats))
    G = pc.to_networkx(model)
    assert G.nodes[(model.roots[0], 0)]["kind"] == "sum"
    again = pc.from_networkx(G)
    x = all_assignments(cats)
    np.testing.assert_allclose(ref.log_prob(again, x), ref.log_prob(model, x), rtol=0, atol=1e-12)
    G2 = pc.to_networkx(again)
    assert (G2.number_of_nodes(), G2.number_of_edges()) == (G.number_of_nodes(),
                                                            G.number_of_edges())


def test_gaussian_round_trip():
    g = pc.inputs(0, 2, pc.Gaussian(mean=np.array([0.0, 3.0]), std=np.array([1.0, 2.0])))
    model = pc.lower(pc.summate(g, num_nodes=1, weights=[[0.25, 0.75]]))
    again = pc.from_networkx(pc.to_networkx(model))
    x = np.linspace(-4, 6, 11)[:, None]
    np.testing.assert_allclose(ref.log_prob(again, x), ref.log_prob(model, x), atol=1e-12)


def _broken(change) -> nx.DiGraph:
    G = hand_written()
    change(G)
    return G


@pytest.mark.parametrize("change, message", [
    (lambda G: G.add_edge("m", "root", weight=1.0), "cycle"),
    (lambda G: G.nodes["m"].update(kind="max"), "node 'm': kind must be"),
    (lambda G: G.nodes["c2"].pop("params"), "node 'c2': missing attribute 'params'"),
    (lambda G: G.nodes["c2"].update(dist="poisson"), "node 'c2': dist must be"),
    (lambda G: G.nodes["a1"].update(params=[0.5, 0.5]), "node 'a1': bernoulli params"),
    (lambda G: G.add_edge("p1", "a2"), "node 'p1': product children overlap"),
    (lambda G: G.add_edge("m", "a1", weight=0.0), "node 'm': sum children have different"),
    (lambda G: G.edges["m", "c1"].update(weight=0.5), "node 'm': sum weights"),
    (lambda G: G.edges["m", "c1"].pop("weight"), "node 'm': sum edge to 'c1' has no 'weight'"),
    (lambda G: G.add_node("lonely", kind="input", var=2, dist="bernoulli", params=[.5]),
     "exactly one node without parents"),
    (lambda G: G.add_edge("a1", "c1"), "input node cannot have children"),
])
def test_errors_name_the_node(change, message):
    with pytest.raises(BuildError, match=message):
        pc.from_networkx(_broken(change))


def test_to_networkx_refuses_huge_models():
    big = pc.inputs(0, 1_000_001, pc.Bernoulli(), seed=0)
    model = pc.lower(pc.summate(big, num_nodes=1, edges=pc.Sparse([[0, 0]]), weights=[1.0]),
                     validate=False)
    with pytest.raises(BuildError, match="1000002 nodes"):
        pc.to_networkx(model)
