"""The node form's fast decomposability check (sdd_nodes._decomposable)
agrees with element_homes' rule element by element, and a file that breaks
it is refused in both forms with the line and the element named."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler.errors import LoadError
from pccompiler.frontend import sdd_groups, sdd_nodes
from pccompiler.frontend.sdd import from_sdd, read_vtree
from tests.logic.circuits import SDD, shared_sdd, write


@pytest.mark.parametrize("name", ["sudoku_4", "road_r"])
def test_decomposable_agrees_with_element_homes(name, monkeypatch):
    """On random (w, prime, sub) triples over a shared SDD's vtree (literal
    children at random vtree leaves, some true), each element alone passes
    _decomposable exactly when element_homes' containment holds."""
    path = shared_sdd(name)
    vt = read_vtree(path.with_suffix(".vtree"))
    rng = np.random.default_rng(3)
    inner = np.flatnonzero(vt.left >= 0)
    n = 4000
    kind = np.full(n, sdd_groups.L, dtype=np.int8)
    home = rng.integers(0, len(vt.left), size=n)   # any vtree node, in or out of its side
    kind[:40], home[:40] = sdd_groups.T, -1
    w = rng.choice(inner, size=3000)
    p, s = rng.integers(0, n, size=3000), rng.integers(0, n, size=3000)
    for side, child in ((vt.left, p), (vt.right, s)):  # half the children under their side
        near = rng.random(3000) < 0.5
        child[near] = rng.integers(40, n, size=int(near.sum()))
        home[child[near]] = side[w[near]]

    def rule(i):
        ok = True
        for side, c in ((vt.left, p[i]), (vt.right, s[i])):
            if kind[c] == sdd_groups.T:
                continue
            top, h = side[w[i]], home[c]
            ok &= bool(vt.lo[h] >= vt.lo[top] and vt.hi[h] <= vt.hi[top])
        return ok

    want = np.array([rule(i) for i in range(3000)])
    assert want.any() and not want.all()
    monkeypatch.setattr(sdd_nodes, "chunk_bounds",
                        lambda m, step=None: [(i, min(m, i + 700)) for i in range(0, m, 700)])
    got = np.array([sdd_nodes._decomposable(vt, kind, home, w[i:i + 1], p[i:i + 1], s[i:i + 1])
                    for i in range(3000)])
    np.testing.assert_array_equal(got, want)
    assert sdd_nodes._decomposable(vt, kind, home, w[want], p[want], s[want])
    assert not sdd_nodes._decomposable(vt, kind, home, w, p, s)


@pytest.mark.parametrize("form", ["groups", "nodes"])
def test_not_decomposable_is_refused_with_the_line(tmp_path, form):
    sdd = SDD.replace("D 9 3 3 6 5 2 7 8 4", "D 9 3 1 7 5")
    with pytest.raises(LoadError) as err:
        from_sdd(write(tmp_path, sdd), form=form)
    assert ":12: node 9: prime 7 lies under vtree 4, not under vtree 1 (the circuit is not " \
           "decomposable)" in str(err.value)


@pytest.mark.parametrize("form", ["groups", "nodes"])
def test_bad_sub_is_refused_with_the_line(tmp_path, form):
    """A sub outside right(w) (the node form finds it on the distinct
    products, then imports again checking every element to name it)."""
    sdd = SDD.replace("D 9 3 3 6 5 2 7 8 4", "D 9 3 2 8 0 6 7")
    with pytest.raises(LoadError) as err:
        from_sdd(write(tmp_path, sdd), form=form)
    assert ":12: node 9: sub 0 lies under vtree 0, not under vtree 4 (the circuit is not " \
           "decomposable)" in str(err.value)


def test_elements_are_checked_one_by_one_only_to_name_a_bad_one(tmp_path, monkeypatch):
    """The node form checks decomposability on its distinct products; the
    element-by-element check (_decomposable, element_homes) runs only after
    that check failed, in a second import that names the element."""
    calls = []
    real = sdd_nodes._decomposable
    monkeypatch.setattr(sdd_nodes, "_decomposable", lambda *a: calls.append(1) or real(*a))
    from_sdd(write(tmp_path), form="nodes")
    assert calls == []
    bad = SDD.replace("D 9 3 3 6 5 2 7 8 4", "D 9 3 1 7 5")
    with pytest.raises(LoadError, match="prime 7 lies under vtree 4"):
        from_sdd(write(tmp_path, bad, name="bad"), form="nodes")
    assert calls == [1]


@pytest.mark.parametrize("name", ["sudoku_4", "road_r"])
def test_vtree_inorder_ranges_agree_with_intervals(name):
    """vtree_inorder's test (a node's in-order position within the range
    of side[w]'s subtree) holds for exactly the pairs whose leaf intervals
    nest, for every vtree node against every side of every inner node."""
    vt = read_vtree(shared_sdd(name).with_suffix(".vtree"))
    inorder, sides = sdd_nodes.vtree_inorder(vt)
    assert len(np.unique(inorder)) == len(vt.left)
    inner = np.flatnonzero(vt.left >= 0)
    u = np.arange(len(vt.left))
    for side, first, span in sides:
        top = side[inner]
        got = (inorder[u][None, :] - first[inner][:, None]).astype(np.uint32) <= span[inner][:, None]
        want = (vt.lo[u][None, :] >= vt.lo[top][:, None]) & (vt.hi[u][None, :] <= vt.hi[top][:, None])
        np.testing.assert_array_equal(got, want)
        assert want.any() and not want.all()


def test_run_starts_is_the_r_formula():
    """sdd_nodes._run_starts gives np.r_[True, v[1:] != v[:-1] + step]
    (empty for no values)."""
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 50):
        v = np.cumsum(rng.integers(0, 2, size=n))
        for step in (0, 1):
            want = np.r_[True, v[1:] != v[:-1] + step] if n else np.zeros(0, dtype=bool)
            np.testing.assert_array_equal(sdd_nodes._run_starts(v, step), want)
    assert sdd_nodes._run_starts(np.array([3, 4, 5, 7, 7]), 1).tolist() == \
        [True, False, False, True, True]


@pytest.mark.parametrize("fold", [False, True])
def test_fold_false_hands_the_live_mask_of_its_result(tmp_path, monkeypatch, fold):
    """fold_false's live_out is ~(false[prime] | false[sub]) of the false
    nodes it returns, with no decision folded (F's elements dropped) and
    with a decision folded to false (the mask made again), and the node
    form imports the same circuit either way (model count)."""
    from pccompiler.logic import model_count
    seen = []
    real = sdd_groups.fold_false

    def spy(vt, kind, home, e_dec, prime, sub, live_out=None):
        false = real(vt, kind, home, e_dec, prime, sub, live_out)
        seen.append((kind, false, np.array(live_out[-1]), ~(false[prime] | false[sub])))
        return false
    monkeypatch.setattr(sdd_nodes, "fold_false", spy)
    text = SDD.replace("D 6 1 2 0 1 2 4", "D 6 1 2 0 4 2 4") if fold else SDD
    assert model_count(from_sdd(write(tmp_path, text), form="nodes")) == [2 if fold else 4]
    (kind, false, live, want), = seen
    np.testing.assert_array_equal(live, want)
    assert int(false.sum()) - int((kind == sdd_groups.F).sum()) == int(fold)
    assert not live.all()


@pytest.mark.parametrize("seed", range(4))
def test_distinct_pairs_is_the_sort_of_all_pairs(seed):
    """sdd_nodes._distinct_pairs (columns gathered, only the decisions that
    list products out of order sorted, repeats dropped) gives what one sort
    of all the packed pairs gives (_distinct_pairs_sorted), with decision
    nodes in order or not, products out of order and listed twice."""
    rng = np.random.default_rng(seed)
    for trial in range(100):
        num_dec = int(rng.integers(1, 30))
        n = num_dec + int(rng.integers(1, 50))
        node_of = rng.permutation(n).astype(np.int64)
        decs = rng.choice(n, num_dec, replace=False)
        if trial % 4:
            decs = decs[np.argsort(node_of[decs])]       # decision nodes ascending (the usual)
        per = rng.integers(1, 6, num_dec)
        dec = np.repeat(decs, per).astype(np.int32)
        prod_id = rng.integers(0, 10 ** (1 + trial % 3), 40).astype(np.int32)
        inv = rng.integers(0, 40, len(dec)).astype(np.int32)
        if trial % 5 == 0:                                # every decision's products in order
            inv = inv[np.lexsort((prod_id[inv], np.repeat(np.arange(num_dec), per)))]
        got = sdd_nodes._distinct_pairs(node_of, dec, prod_id, inv)
        width = int(prod_id.max()) + 1
        want = sdd_nodes._distinct_pairs_sorted(node_of[dec], prod_id[inv].astype(np.int64),
                                                width)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("in_order", [True, False])
def test_tail_scopes_are_the_scatter_by_owner(monkeypatch, in_order):
    """_tail_scopes writes every product and decision its decision's vtree
    interval, as a scatter through each node's owner decision would, with
    the decisions' ids in the order of `decs` or not, some decisions with
    no new products, and runs cut into several chunks."""
    from types import SimpleNamespace

    from pccompiler.ir.nodes import row_chunks
    rng = np.random.default_rng(7)
    nvt, num_dec, base = 30, 60, 11
    vt = SimpleNamespace(lo=rng.integers(0, 100, nvt), hi=rng.integers(100, 200, nvt))
    home = rng.integers(0, nvt, 500)
    decs = rng.choice(500, num_dec, replace=False)         # SDD ids of the live decisions
    new_prods = rng.integers(0, 4, num_dec)                # per decision, in record order
    by_record = np.arange(num_dec) if in_order else rng.permutation(num_dec)
    dec_id = np.empty(num_dec, dtype=np.int64)
    dec_id[by_record] = base + np.cumsum(new_prods + 1) - 1
    n = base + int((new_prods + 1).sum())
    owner = np.empty(n - base, dtype=np.int64)             # decs index owning each tail node
    owner[:] = -1
    start = base
    for r, d in enumerate(by_record):
        owner[start - base:start - base + new_prods[r] + 1] = d
        start += new_prods[r] + 1
    monkeypatch.setattr(sdd_nodes, "row_chunks", lambda ends, step=None: row_chunks(ends, 5))
    lo, hi = np.full(n, -7, dtype=np.int32), np.full(n, -7, dtype=np.int32)
    sdd_nodes._tail_scopes(vt, home, decs, dec_id, base, (lo, hi))
    np.testing.assert_array_equal(lo[base:], vt.lo[home[decs[owner]]])
    np.testing.assert_array_equal(hi[base:], vt.hi[home[decs[owner]]])
    assert (lo[:base] == -7).all() and (new_prods == 0).any()
