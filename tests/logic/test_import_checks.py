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
