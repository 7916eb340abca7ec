"""The invariants of a node-form Model (pcir.NodeCircuit), numpy only.

Scopes are intervals over one variable order, so smoothness and
decomposability are exact linear checks: an input covers its variable's
position; every child of a sum has the sum's interval; the children of a
product sorted by their lower ends tile the product's interval. Every
array's length and index range is checked before it indexes another, and
every error names the first offending node (and its kind).
"""

from __future__ import annotations

import numpy as np

from pccompiler.errors import CheckError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.nodes import (INPUT, KIND_NAMES, PRODUCT, SUM, TENSOR_FIELDS, NodeArrays,
                                  concat_ranges, row_chunks)
from pccompiler.ir.tensors import FLOAT_DTYPES, INT_DTYPES

NORMALIZATION_TOL = 1e-5
_INDEX = INT_DTYPES | {pcir.UINT8}


def _fail(rule: str, message: str, values=None) -> None:
    raise CheckError(rule, message, None, "", values)


def _node(arrays_kind: np.ndarray, n: int) -> str:
    k = int(arrays_kind[n]) if 0 <= n < len(arrays_kind) else -1
    return f"node {n} ({KIND_NAMES.get(k, 'kind ' + str(k))})"


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _tensor(table, model: pcir.Model, field: str, dtypes, ndim: int) -> np.ndarray:
    return table.get(getattr(model.nodes, field), f"nodes.{field}", None, dtypes=dtypes,
                     ndim=ndim)


def load_checked_arrays(model: pcir.Model, table) -> NodeArrays:
    """The NodeCircuit's arrays with dtypes and ranks checked (`table`: the
    checker's tensor table)."""
    floats = {"sum_weights", "input_params"}
    ndims = {"input_params": 2}
    arrays = [_tensor(table, model, f, FLOAT_DTYPES if f in floats else _INDEX, ndims.get(f, 1))
              for f in TENSOR_FIELDS]
    return NodeArrays(*arrays, roots=np.asarray(model.nodes.roots, dtype=np.int64))


def check_node_model(model: pcir.Model, table, logic: bool, screen: bool = True) -> None:
    """Raise the first CheckError of the node form (`logic`: sum weights
    need not be normalized, metadata semantics=logic). `screen`: the edge
    rules (child ids, smoothness, decomposability) first run as a chunked
    screen (see _edges_hold, _scopes_hold), and the exact per-edge rules
    below, which find and word the first error, run only where the screen
    saw one (circuits of SCREEN_MIN_EDGES edges or more); False runs the
    exact rules always (the tests compare both)."""
    if len(model.groups) or len(model.roots) or len(model.ties):
        _fail("node-form", "a Model with a NodeCircuit must have no groups, roots or ties "
                           f"(it has {len(model.groups)}, {len(model.roots)}, {len(model.ties)})")
    a = load_checked_arrays(model, table)
    n = int(model.nodes.num_nodes)
    num_vars = len(model.variables)
    parent = _check_csr(a, n, screen)
    _check_weights(a, logic)
    _check_inputs(a, model, num_vars)
    _check_scopes(a, num_vars, parent)
    if not len(a.roots):
        _fail("roots", "the node circuit has no root")
    bad = (a.roots < 0) | (a.roots >= n)
    if bad.any():
        _fail("roots", f"root {int(a.roots[_first(bad)])} is not a node id (0..{n - 1})")


def _check_csr(a: NodeArrays, n: int, screen: bool = False) -> np.ndarray | None:
    """Kinds, offsets, fan-ins and child ids; returns the parent node of
    every edge (int64 [E]), which the scope checks reuse, or None when
    `screen` found every child id below its parent (the scope checks then
    screen too and build the parents only if they must word an error)."""
    if len(a.kind) != n:
        _fail("tensor-shape", f"nodes.kind has {len(a.kind)} entries, num_nodes is {n}")
    bad = (a.kind != INPUT) & (a.kind != PRODUCT) & (a.kind != SUM)
    if bad.any():
        i = _first(bad)
        _fail("node-kind", f"node {i} has kind {int(a.kind[i])}, not input, product or sum")
    off = a.child_offsets
    if len(off) != n + 1 or (n + 1 and int(off[0]) != 0):
        _fail("node-offsets", f"nodes.child_offsets must have num_nodes + 1 = {n + 1} entries "
                              f"starting at 0 (it has {len(off)})")
    fan = _fan(a)
    if (fan < 0).any():
        i = _first(fan < 0)
        _fail("node-offsets", f"{_node(a.kind, i)}: child_offsets decrease ({int(off[i])} -> "
                              f"{int(off[i + 1])})")
    if int(off[-1]) != len(a.child_ids):
        _fail("node-offsets", f"child_offsets end at {int(off[-1])} but nodes.child_ids has "
                              f"{len(a.child_ids)} entries")
    bad = (a.kind == INPUT) != (fan == 0)
    if bad.any():
        i = _first(bad)
        _fail("node-fanin", f"{_node(a.kind, i)} has {int(fan[i])} children (inputs have none, "
                            "products and sums at least one)")
    if screen and len(a.child_ids) >= SCREEN_MIN_EDGES and _edges_hold(a.child_ids, off, fan):
        return None
    kids = a.child_ids.astype(np.int64, copy=False)
    parent = np.repeat(np.arange(n), fan)
    bad = (kids < 0) | (kids >= parent)
    if bad.any():
        e = _first(bad)
        p, c = int(parent[e]), int(kids[e])
        if 0 <= c < n:
            _fail("topological-order", f"{_node(a.kind, p)}: child {c} is not smaller than its "
                                       "parent (nodes must be in topological order)", (p, c))
        _fail("index-range", f"{_node(a.kind, p)}: child {c} is not a node id (0..{n - 1})",
              (p, c))
    return parent


def _fan(a: NodeArrays) -> np.ndarray:
    """Every node's fan-in, as int64 (a narrower stored dtype would wrap a
    decreasing offset around): the arrays' cached fan_in() when the offsets
    are int64, so the CSR, weight and scope rules share one diff of the
    10^7 offsets instead of making three."""
    off = a.child_offsets
    return a.fan_in() if off.dtype == np.int64 else np.diff(off.astype(np.int64))


def _check_weights(a: NodeArrays, logic: bool) -> None:
    fan = _fan(a)
    sums = np.flatnonzero(a.kind == SUM)
    need = int(fan[sums].sum())
    w = a.sum_weights
    if len(w) != need:
        _fail("tensor-shape", f"nodes.sum_weights has {len(w)} entries, the sum nodes have "
                              f"{need} edges")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        e = _first(bad)
        owner = sums[np.searchsorted(np.cumsum(fan[sums]), e, side="right")]
        _fail("normalized-weights", f"{_node(a.kind, owner)}: weight {float(w[e])} is negative "
                                    "or not finite")
    if logic or not len(sums):
        return
    starts = np.cumsum(fan[sums]) - fan[sums]
    total = np.add.reduceat(w.astype(np.float64), starts) if len(w) else np.zeros(len(sums))
    bad = np.abs(total - 1.0) > NORMALIZATION_TOL
    if bad.any():
        i = _first(bad)
        _fail("normalized-weights", f"{_node(a.kind, int(sums[i]))}: weights sum to "
                                    f"{float(total[i])}, not 1")


def _check_inputs(a: NodeArrays, model: pcir.Model, num_vars: int) -> None:
    inputs = np.flatnonzero(a.kind == INPUT)
    if len(a.input_vars) != len(inputs) or len(a.input_params) != len(inputs):
        _fail("tensor-shape", f"nodes.input_vars / input_params have {len(a.input_vars)} / "
                              f"{len(a.input_params)} rows for {len(inputs)} input nodes")
    v = a.input_vars.astype(np.int64, copy=False)
    bad = (v < 0) | (v >= num_vars)
    if bad.any():
        i = _first(bad)
        _fail("input-variable", f"{_node(a.kind, int(inputs[i]))}: variable {int(v[i])} is not "
                                f"a variable id (0..{num_vars - 1})")
    cats = np.array([x.num_cats for x in model.variables], dtype=np.int64)
    kinds = np.array([x.kind for x in model.variables], dtype=np.int64)
    width = a.input_params.shape[1] if a.input_params.ndim == 2 else 0
    bad = (kinds[v] == pcir.REAL) | (cats[v] != width)
    if bad.any():
        i = _first(bad)
        _fail("input-params", f"{_node(a.kind, int(inputs[i]))}: variable {int(v[i])} has "
                              f"{int(cats[v[i]])} categories, the parameter rows {width} "
                              "(node inputs are categorical)")
    p = a.input_params
    rows = p.sum(axis=1) if len(p) else np.zeros(0)
    bad = ~np.isfinite(rows) | (p < 0).any(axis=1) | (np.abs(rows - 1.0) > NORMALIZATION_TOL)
    if bad.any():
        i = _first(bad)
        _fail("normalized-weights", f"{_node(a.kind, int(inputs[i]))}: categorical parameters "
                                    f"{p[i].tolist()} are not a distribution")


def _check_scopes(a: NodeArrays, num_vars: int, parent: np.ndarray | None) -> None:
    order = a.variable_order.astype(np.int64, copy=False)
    if len(order) != num_vars or not np.array_equal(np.sort(order), np.arange(num_vars)):
        _fail("variable-order", f"nodes.variable_order must be a permutation of the {num_vars} "
                                "variables")
    n = len(a.kind)
    lo = a.scope_lo.astype(np.int64, copy=False)
    hi = a.scope_hi.astype(np.int64, copy=False)
    if len(lo) != n or len(hi) != n:
        _fail("tensor-shape", f"nodes.scope_lo / scope_hi have {len(lo)} / {len(hi)} entries "
                              f"for {n} nodes")
    bad = (lo < 0) | (hi <= lo) | (hi > num_vars)
    if bad.any():
        i = _first(bad)
        _fail("scope-range", f"{_node(a.kind, i)}: scope [{int(lo[i])}, {int(hi[i])}) is not a "
                             f"non-empty interval of 0..{num_vars}")
    pos = np.empty(num_vars, dtype=np.int64)
    pos[order] = np.arange(num_vars)
    inputs = np.flatnonzero(a.kind == INPUT)
    at = pos[a.input_vars.astype(np.int64, copy=False)]
    bad = (lo[inputs] != at) | (hi[inputs] != at + 1)
    if bad.any():
        i = _first(bad)
        _fail("scope", f"{_node(a.kind, int(inputs[i]))}: scope [{int(lo[inputs[i]])}, "
                       f"{int(hi[inputs[i]])}) is not its variable's position {int(at[i])}")
    if parent is None:                  # the csr screen held: screen the scopes too
        if _scopes_hold(a, lo, hi):
            return
        parent = a.parents()
    kids = a.child_ids.astype(np.int64, copy=False)
    on_sum = a.kind[parent] == SUM
    bad = on_sum & ((lo[kids] != lo[parent]) | (hi[kids] != hi[parent]))
    if bad.any():
        e = _first(bad)
        p, c = int(parent[e]), int(kids[e])
        _fail("smoothness", f"{_node(a.kind, p)}: child {c} has scope [{int(lo[c])}, "
                            f"{int(hi[c])}), the sum has [{int(lo[p])}, {int(hi[p])})", (p, c))
    _check_products(a, parent[~on_sum], kids[~on_sum], lo, hi)


def _check_products(a: NodeArrays, parent: np.ndarray, kids: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> None:
    """Children of each product, sorted by scope_lo, tile its interval."""
    if not len(parent):
        return
    key = parent * (int(hi.max()) + 1) + lo[kids]      # parent-major: nearly sorted already
    if (key[1:] < key[:-1]).any():
        o = np.argsort(key, kind="stable")
        parent, kids = parent[o], kids[o]
    p, c = parent, kids
    first = np.r_[True, p[1:] != p[:-1]]
    last = np.r_[p[1:] != p[:-1], True]
    prev_hi = np.r_[0, hi[c][:-1]]
    want = np.where(first, lo[p], prev_hi)
    gap = lo[c] != want
    tail = last & (hi[c] != hi[p])
    bad = gap | tail
    if bad.any():
        e = _first(bad)
        pn, cn = int(p[e]), int(c[e])
        if gap[e] and not first[e] and lo[cn] < want[e]:
            what = (f"children overlap: child {cn} starts at {int(lo[cn])} before the previous "
                    f"child ends at {int(want[e])}")
        elif gap[e]:
            what = f"variables {int(want[e])}..{int(lo[cn]) - 1} are covered by no child"
        else:
            what = (f"its children end at {int(hi[cn])}, the product's scope at "
                    f"{int(hi[pn])}")
        _fail("decomposability", f"{_node(a.kind, pn)} over [{int(lo[pn])}, {int(hi[pn])}): "
                                 f"{what}", (pn, cn))


# ---------------------------------------------------------------- screens
# The exact edge rules above build several int64 arrays over all edges (the
# parents, the child ids, their scopes, a sort key): ~0.3 s for the 1.5M
# edges of a 110k-node SDD, as much as the import. The screens below decide
# the same rules chunk by chunk of whole rows (ir.nodes.row_chunks: small
# temporaries, reused while in cache) with per-row reductions, and say only
# whether every edge holds; where one may not, the exact rules run and word
# the first error, so messages never depend on the screen.

_LOW = (1 << 32) - 1
# Fewer edges than this: the exact rules alone (the screens' fixed cost of
# some 30 numpy calls is above what they save below ~5000 edges).
SCREEN_MIN_EDGES = 4096


def _row_parts(off: np.ndarray, fan: np.ndarray):
    """(nodes, e0, e1, parent of each edge) per chunk of whole rows with
    children (ir.nodes.row_chunks): rows without children are inputs."""
    rows = np.flatnonzero(fan)
    for r0, r1 in row_chunks(off[1:][rows]):
        nodes = rows[r0:r1]
        e0, e1 = int(off[nodes[0]]), int(off[nodes[-1] + 1])
        yield nodes, e0, e1, np.repeat(nodes, fan[nodes])


def _edges_hold(kids: np.ndarray, off: np.ndarray, fan: np.ndarray) -> bool:
    """Whether every child id is >= 0 and below its parent's id."""
    if len(kids) and int(kids.min()) < 0:
        return False
    return not any((kids[e0:e1] >= parent).any() for _, e0, e1, parent in _row_parts(off, fan))


def _scopes_hold(a: NodeArrays, lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether every sum's children have its interval and every product's
    children tile its interval (the rules of _check_scopes after the
    per-node ones, which have held: scopes are non-empty intervals of the
    variables, child ids are valid). Scopes are packed as lo << 32 | hi, one
    gather per edge. Sums: each child's packed scope equals the sum's.
    Products: in child order each child starts where the previous one
    ends, the first at the product's lo, the last ending at its hi; a
    product whose children are not in that order (the importer puts a
    prime's tautology siblings after it, whichever side they are on) is
    checked by the exact sorted rule, on its edges only."""
    span = (lo << 32) | hi
    off, fan = a.child_offsets, a.fan_in()
    is_sum = a.kind == SUM
    suspects = []
    for nodes, e0, e1, parent in _row_parts(off, fan):
        child = span[a.child_ids[e0:e1]]
        on_sum = is_sum[parent]
        if (on_sum & (child != span[parent])).any():
            return False
        gap = (child[:-1] & _LOW) != (child[1:] >> 32)    # pair (e, e+1) breaks the chain
        gap &= parent[:-1] == parent[1:]
        gap &= ~on_sum[:-1]
        starts = off[nodes] - e0
        ends = off[nodes + 1] - e0
        broken = ((child[starts] >> 32) != lo[nodes]) | ((child[ends - 1] & _LOW) != hi[nodes])
        suspects += [parent[:-1][gap], nodes[broken & ~is_sum[nodes]]]
    suspects = np.unique(np.concatenate(suspects)) if suspects else np.zeros(0, dtype=np.int64)
    if not len(suspects):
        return True
    k = fan[suspects]
    kids = a.child_ids[concat_ranges(off[suspects], k)].astype(np.int64)
    try:
        _check_products(a, np.repeat(suspects, k), kids, lo, hi)
    except CheckError:
        return False
    return True
