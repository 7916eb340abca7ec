"""`ir.check(model)`: every invariant of a pcir.Model, stated once.

Each rule has a short stable name (the `rule` of the CheckError) so tests,
tools and users can refer to it: "ir-version", "topological-order",
"smoothness", "decomposability", "normalized-weights", "index-range",
"tensor-shape", "tie-shape", ...  The checks are vectorized over each group's
index and weight arrays (numpy reductions, `bincount`, `reduceat`), so a
100M-edge model checks in seconds; Python loops run per group only.

Nothing here allocates memory from a number the file merely claims: shapes
are compared with the bytes actually present before any array is built, and
per-parent reductions only run once the edge count bounds the node count.

`check(model)` raises the first violation; `check(model, collect=True)`
returns every violation (at most one per group, since a broken group's later
rules would only repeat the first), which `pcc verify` prints.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pccompiler.errors import CheckError, LoadError
from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir import version as _version
from pccompiler.ir.group_screen import screen_groups
from pccompiler.ir.helpers import params_per_node
from pccompiler.ir.node_checker import check_node_model
from pccompiler.ir.tensors import (FLOAT_DTYPES, INT_DTYPES, dtype_name, from_checked_bytes,
                                   itemsize, nbytes, to_numpy)

# Largest num_nodes a group may claim (2**40 nodes is far beyond any GPU).
MAX_NODES = 2 ** 40
# Absolute tolerance of "sums to 1" for sum weights and categorical rows.
NORMALIZATION_TOL = 1e-5
# Model.metadata[SEMANTICS_KEY] == LOGIC_SEMANTICS marks a logic circuit
# (SDD, d-DNNF): its sum weights need not be normalized (see is_logic).
SEMANTICS_KEY = "semantics"
LOGIC_SEMANTICS = "logic"

# Bytes per element of each IR dtype (tensors.itemsize as a table).
_ITEMSIZE = {d: itemsize(d) for d in pcir.DataType.values() if d in FLOAT_DTYPES | INT_DTYPES}

_KIND_NAMES = {pcir.INPUT: "input", pcir.PRODUCT: "product", pcir.SUM: "sum"}


class _Tensors:
    """Name -> numpy over a message's tensors, raising CheckErrors.

    The model-wide pass ("tensor-bytes") has already compared every tensor's
    byte count with its dims, so decoding here allocates only what exists.
    `shapes`: that pass's name -> (dtype, dims, inline bytes), whose bytes
    are decoded as they are (upb copies a tensor's bytes on every read: for
    the 10^7-entry arrays of a large node circuit, a second copy costs
    about as much as the node checks).
    """

    def __init__(self, tensors, arrays=None, shapes: dict | None = None):
        self.protos = {}
        for t in tensors:
            self.protos.setdefault(t.name, t)
        self.cache: dict[str, np.ndarray] = {}
        self.arrays = arrays or {}
        self.shapes = shapes or {}

    def get(self, name: str, what: str, group: pcir.Group | None = None,
            dtypes: frozenset = FLOAT_DTYPES, ndim: int | None = None) -> np.ndarray:
        gid, gname = (group.id, group.name) if group is not None else (None, "")
        proto = self.protos.get(name)
        if not name or proto is None:
            raise CheckError("tensor-missing", f"{what} tensor {name!r} does not exist",
                             gid, gname, name)
        if proto.dtype not in dtypes:
            raise CheckError("tensor-dtype", f"{what} tensor {name!r} has dtype "
                             f"{dtype_name(proto.dtype)}, expected one of "
                             f"{sorted(dtype_name(d) for d in dtypes)}", gid, gname)
        if ndim is not None and len(proto.dims) != ndim:
            raise CheckError("tensor-shape", f"{what} tensor {name!r} has shape "
                             f"{list(proto.dims)}, expected {ndim} dimensions", gid, gname)
        array = self.cache.get(name)
        held = self.shapes.get(name)
        if array is None and held is not None and held[2] is not None:
            array = self.cache[name] = from_checked_bytes(*held)
        if array is None:
            try:
                array = to_numpy(proto) if name not in self.arrays else \
                    np.asarray(self.arrays[name]).reshape(tuple(proto.dims))
            except LoadError as exc:
                raise CheckError("tensor-data", str(exc), gid, gname) from None
            self.cache[name] = array
        return array


def _fail(rule: str, group: pcir.Group | None, message: str, values: object = None):
    gid, gname = (group.id, group.name) if group is not None else (None, "")
    raise CheckError(rule, message, gid, gname, values)


def _shape(array: np.ndarray, expected: tuple, what: str, group: pcir.Group) -> None:
    if tuple(array.shape) != tuple(expected):
        _fail("tensor-shape", group, f"{what} has shape {list(array.shape)}, expected "
              f"{list(expected)}", list(array.shape))


def _first_bad(mask: np.ndarray) -> int:
    """Index (flat) of the first True entry."""
    return int(np.flatnonzero(mask.reshape(-1))[0])


# ---------------------------------------------------------------- model-wide rules

def _tensor_bytes_hold(tensors, arrays, shapes: dict | None = None) -> bool:
    """One tight pass: True when every tensor obeys the tensor-bytes rules
    (then check_tensor_bytes needs no second look); False means some tensor
    may not, and the exact rules below find it and word the message.
    `shapes` receives name -> (dtype, dims, inline bytes or None) of every
    tensor on the way (the bytes are read once: upb copies them per read)."""
    seen: dict = {} if shapes is None else shapes
    sizes = _ITEMSIZE
    for t in tensors:
        name = t.name
        dtype = t.dtype
        size = sizes.get(dtype)
        if not name or name in seen or size is None:
            return False
        dims = tuple(t.dims)
        for d in dims:
            size *= d
            if d < 0:
                return False
        if t.HasField("external"):
            if arrays is None or name not in arrays or np.asarray(arrays[name]).nbytes != size:
                return False
            seen[name] = (dtype, dims, None)
        else:
            data = t.raw_data
            if len(data) != size:
                return False
            seen[name] = (dtype, dims, data)
    return True


def check_tensor_bytes(tensors, owner: str = "model", arrays=None,
                       shapes: dict | None = None) -> None:
    """Names unique, dtypes known, raw byte counts equal dims * itemsize.
    A tensor may be external only when `arrays` (ir/external_arrays.py)
    holds its bytes. `shapes`: filled with name -> (dtype, dims, inline
    bytes or None) when the rules hold (the screens reuse them)."""
    if _tensor_bytes_hold(tensors, arrays, shapes):
        return
    if shapes is not None:
        shapes.clear()
    seen = set()
    for t in tensors:
        if not t.name:
            _fail("tensor-name", None, f"a tensor of the {owner} has an empty name")
        if t.name in seen:
            _fail("tensor-name", None, f"tensor name {t.name!r} is used twice", t.name)
        seen.add(t.name)
        try:
            expected = nbytes(t)
        except LoadError as exc:
            _fail("tensor-bytes", None, str(exc), t.name)
        if t.HasField("external") and arrays is not None and t.name in arrays:
            got = np.asarray(arrays[t.name]).nbytes
        elif t.HasField("external"):
            _fail("tensor-external", None, f"tensor {t.name!r} still refers to external "
                  f"data {t.external.location!r}; load the file with ir.load()", t.name)
        else:
            got = len(t.raw_data)
        if got != expected:
            _fail("tensor-bytes", None, f"tensor {t.name!r}: dims {list(t.dims)} of "
                  f"{dtype_name(t.dtype)} need {expected} bytes, found {got}", t.name)


def check_version(version: int, what: str = "model") -> None:
    lo, hi = _version.MIN_SUPPORTED_IR_VERSION, _version.IR_VERSION
    if not lo <= version <= hi:
        _fail("ir-version", None, f"{what} has ir_version {version}; this pccompiler "
              f"supports {lo}..{hi}", version)


def _check_variables(model: pcir.Model) -> None:
    for i, v in enumerate(model.variables):
        name = f"variable {i} ({v.name!r})"
        if v.kind == pcir.CATEGORICAL and v.num_cats < 1:
            _fail("variable", None, f"{name} is categorical with num_cats {v.num_cats} < 1")
        elif v.kind == pcir.BINARY and v.num_cats != 2:
            _fail("variable", None, f"{name} is binary with num_cats {v.num_cats} != 2")
        elif v.kind == pcir.REAL and v.num_cats != 0:
            _fail("variable", None, f"{name} is real with num_cats {v.num_cats} != 0")
        elif v.kind not in (pcir.CATEGORICAL, pcir.BINARY, pcir.REAL):
            _fail("variable", None, f"{name} has no kind")


def _check_roots(model: pcir.Model) -> None:
    if not model.roots:
        _fail("roots", None, "the model has no root")
    for r in model.roots:
        if not 0 <= r < len(model.groups):
            _fail("roots", None, f"root {r} is not a group id (0..{len(model.groups) - 1})", r)


def _tie_map(model: pcir.Model) -> dict[int, int]:
    """Validated group -> target map ("tie" rules that need no tensors)."""
    n = len(model.groups)
    ties: dict[int, int] = {}
    for tie in model.ties:
        g, t = tie.group, tie.target
        if not (0 <= g < n and 0 <= t < n):
            _fail("tie-target", None, f"tie {g} -> {t} names a group that does not exist", (g, t))
        if g in ties:
            _fail("tie-target", model.groups[g], "the group is tied twice", (ties[g], t))
        if g == t:
            _fail("tie-target", model.groups[g], "the group is tied to itself", t)
        ties[g] = t
    for g, t in ties.items():
        if t in ties:
            _fail("tie-target", model.groups[g], f"tie target {t} is itself tied to {ties[t]}", t)
    return ties


# ---------------------------------------------------------------- per-group rules

def _check_header(model: pcir.Model, g: pcir.Group, index: int) -> None:
    if g.id != index:
        raise CheckError("group-id", f"the group at index {index} has id {g.id}", index,
                         g.name, g.id)
    if g.kind not in _KIND_NAMES:
        _fail("group-kind", g, f"group kind {g.kind} is not INPUT, PRODUCT or SUM", g.kind)
    if not 1 <= g.num_nodes < MAX_NODES:
        _fail("num-nodes", g, f"num_nodes {g.num_nodes} is not in [1, 2**40)", g.num_nodes)
    scope = g.scope
    if len(scope) == 0:
        _fail("scope", g, "the scope is empty")
    if len(scope) > 1 and (np.any(np.diff(np.asarray(scope, dtype=np.int64)) <= 0)
                           if len(scope) > 16 else
                           any(a >= b for a, b in zip(scope, scope[1:]))):
        _fail("scope", g, f"the scope is not sorted and unique: {list(scope[:8])}...")
    if scope[0] < 0 or scope[-1] >= len(model.variables):
        _fail("scope", g, f"scope variables {scope[0]}..{scope[-1]} are not all in "
              f"0..{len(model.variables) - 1}")
    children = g.product.children if g.kind == pcir.PRODUCT else g.sum.children
    if g.kind != pcir.INPUT:
        if len(children) == 0:
            _fail("children", g, f"a {_KIND_NAMES[g.kind]} group needs at least one child")
        for c in children:
            if not 0 <= c < g.id:
                _fail("topological-order", g, f"child {c} does not precede the group "
                      f"(children must have smaller ids)", c)


def _check_input(model: pcir.Model, g: pcir.Group, table: _Tensors, tied: bool,
                 batch: dict | None = None) -> None:
    var = g.input.variable
    if list(g.scope) != [var]:
        _fail("input-scope", g, f"scope {list(g.scope)} != [variable {var}]")
    v = model.variables[var]
    dist = g.input.dist
    if dist == pcir.CATEGORICAL_DIST:
        ok = v.kind in (pcir.CATEGORICAL, pcir.BINARY)
    elif dist == pcir.BERNOULLI_DIST:
        ok = v.kind == pcir.BINARY or (v.kind == pcir.CATEGORICAL and v.num_cats == 2)
    elif dist == pcir.GAUSSIAN_DIST:
        ok = v.kind == pcir.REAL
    else:
        _fail("input-dist", g, f"distribution {dist} is not set or unknown", dist)
    if not ok:
        _fail("input-dist", g, f"{pcir.Distribution.Name(dist)} cannot model variable {var} "
              f"({pcir.VariableKind.Name(v.kind)}, num_cats {v.num_cats})")
    if tied:
        if g.input.params:
            _fail("tie-params", g, f"a tied group must leave params empty, not {g.input.params!r}")
        return
    width = params_per_node(dist, v.num_cats)
    params = table.get(g.input.params, "params", g, ndim=2)
    _shape(params, (g.num_nodes, width), f"params {g.input.params!r}", g)
    if batch is not None and len(params) <= _BATCH_ROWS:
        batch.setdefault((dist, width), []).append((g, params))
    else:
        _check_input_values(g, params, dist)


# Input groups with at most this many rows have their values checked in
# batches (one vectorized pass per distribution and width), so models with
# 100k small input groups do not pay numpy's per-call overhead per group.
_BATCH_ROWS = 4096


def _bad_input_rows(params: np.ndarray, dist: int) -> np.ndarray:
    """Per-row mask of rows that break a value rule (any rule)."""
    bad = ~np.isfinite(params).all(axis=1)
    if dist == pcir.CATEGORICAL_DIST:
        bad |= (params < 0).any(axis=1)
        bad |= np.abs(params.sum(axis=1, dtype=np.float64) - 1.0) > NORMALIZATION_TOL
    elif dist == pcir.BERNOULLI_DIST:
        bad |= ((params < 0) | (params > 1)).any(axis=1)
    elif dist == pcir.GAUSSIAN_DIST:
        bad |= params[:, 1] <= 0
    return bad


# Bytes of input parameters checked per concatenated batch: enough to
# amortise the per-group Python, small enough to stay in cache (a 146M-edge
# HCLT has 400 MB of them: one concatenation would copy them all).
INPUT_BATCH_BYTES = 4 << 20


def _check_input_batch(items: list, dist: int, errors: list | None) -> None:
    """Check many small groups at once (in batches of INPUT_BATCH_BYTES);
    re-check only the groups with a bad row, one by one, for a precise
    message."""
    start, size = 0, 0
    for k, (_, a) in enumerate(items):
        size += a.nbytes
        if size >= INPUT_BATCH_BYTES or k == len(items) - 1:
            _check_input_run(items[start:k + 1], dist, errors)
            start, size = k + 1, 0


def _check_input_run(items: list, dist: int, errors: list | None) -> None:
    arrays = [a for _, a in items]
    bad = _bad_input_rows(np.concatenate(arrays) if len(arrays) > 1 else arrays[0], dist)
    if not bad.any():
        return
    ends = np.cumsum([len(a) for a in arrays])
    for k in np.unique(np.searchsorted(ends, np.flatnonzero(bad), side="right")):
        g, params = items[k]
        _run(lambda g=g, params=params: _check_input_values(g, params, dist), errors)


def _check_input_values(g: pcir.Group, params: np.ndarray, dist: int) -> None:
    width = params.shape[1]
    if not np.isfinite(params).all():
        _fail("param-values", g, f"params {g.input.params!r} hold NaN or infinity")
    if dist == pcir.CATEGORICAL_DIST:
        if (params < 0).any():
            _fail("param-values", g, f"categorical row {_first_bad(params < 0) // width} "
                  "has a negative probability")
        err = np.abs(params.sum(axis=1, dtype=np.float64) - 1.0)
        if (err > NORMALIZATION_TOL).any():
            row = _first_bad(err > NORMALIZATION_TOL)
            _fail("normalized-params", g, f"categorical row {row} sums to "
                  f"{params[row].sum(dtype=np.float64):.8g}, not 1", row)
    elif dist == pcir.BERNOULLI_DIST:
        bad = (params < 0) | (params > 1)
        if bad.any():
            _fail("param-values", g, f"Bernoulli node {_first_bad(bad)} has p = "
                  f"{params.reshape(-1)[_first_bad(bad)]} outside [0, 1]")
    elif dist == pcir.GAUSSIAN_DIST:
        if (params[:, 1] <= 0).any():
            row = _first_bad(params[:, 1] <= 0)
            _fail("param-values", g, f"Gaussian node {row} has std {params[row, 1]} <= 0", row)


def _check_product(model: pcir.Model, g: pcir.Group, table: _Tensors) -> None:
    children = list(g.product.children)
    scopes = [np.asarray(model.groups[c].scope, dtype=np.int64) for c in children]
    union = np.sort(np.concatenate(scopes))
    if np.any(np.diff(union) == 0):
        dup = int(union[:-1][np.diff(union) == 0][0])
        _fail("decomposability", g, f"variable {dup} is in the scope of two children "
              f"(child scopes must be disjoint)", dup)
    if not np.array_equal(union, np.asarray(g.scope, dtype=np.int64)):
        _fail("decomposability", g, f"the union of the children's scopes ({union.size} "
              f"variables) differs from the group's scope ({len(g.scope)} variables)")
    index = table.get(g.product.child_index, "child_index", g, dtypes=INT_DTYPES, ndim=2)
    _shape(index, (g.num_nodes, len(children)), f"child_index {g.product.child_index!r}", g)
    sizes = np.asarray([model.groups[c].num_nodes for c in children], dtype=np.int64)
    bad = (index < 0) | (index >= sizes[None, :])
    if bad.any():
        flat = _first_bad(bad)
        row, col = divmod(flat, len(children))
        _fail("index-range", g, f"child_index[{row}, {col}] = {index[row, col]} is outside "
              f"child group {children[col]} (num_nodes {sizes[col]})", (row, col))


def _sum_child_cols(model: pcir.Model, g: pcir.Group) -> int:
    return int(sum(model.groups[c].num_nodes for c in g.sum.children))


def _check_edge_list(g: pcir.Group, edges: np.ndarray, rows: int, cols: int, unit: str) -> None:
    """[E, 2] (parent, child) pairs: in range, sorted, unique, every parent covered."""
    if edges.ndim != 2 or edges.shape[1] != 2:
        _fail("tensor-shape", g, f"edges {g.sum.edges!r} have shape {list(edges.shape)}, "
              f"expected [E, 2]")
    parents, kids = edges[:, 0], edges[:, 1]
    if len(edges) and (parents.min() < 0 or parents.max() >= rows or kids.min() < 0
                       or kids.max() >= cols):
        e = _first_bad((parents < 0) | (parents >= rows) | (kids < 0) | (kids >= cols))
        _fail("index-range", g, f"edge {e} = {edges[e].tolist()} is outside the "
              f"{rows} x {cols} {unit} matrix", e)
    # Sorted and unique <=> the row-major keys strictly increase.
    if rows * cols < 2 ** 62:
        key = parents.astype(np.int64) * cols + kids
        unsorted = key[1:] <= key[:-1]
    else:
        dp, dk = np.diff(parents), np.diff(kids)
        unsorted = (dp < 0) | ((dp == 0) & (dk <= 0))
    if unsorted.any():
        e = _first_bad(unsorted) + 1
        _fail("edges-sorted", g, f"edge {e} = {edges[e].tolist()} is not after edge "
              f"{e - 1} = {edges[e - 1].tolist()} (edges must be sorted and unique)", e)
    # Sorted and in range: the number of distinct parents is 1 + #changes.
    changes = parents[1:] != parents[:-1]
    covered = 1 + int(np.count_nonzero(changes)) if len(edges) else 0
    if covered != rows:
        distinct = parents[np.r_[True, changes]] if len(edges) else parents
        gaps = np.flatnonzero(distinct != np.arange(len(distinct)))
        missing = int(gaps[0]) if gaps.size else len(distinct)
        _fail("edge-coverage", g, f"parent {unit} {missing} has no edge (every node needs "
              f"at least one; {covered} of {rows} have one)", missing)


def is_logic(model: pcir.Model) -> bool:
    """Whether `model` is a logic circuit (metadata semantics=logic): its sum
    weights are unnormalised (1 on every OR edge), so it computes model
    counts and weighted model counts rather than a normalized distribution."""
    return model.metadata.get(SEMANTICS_KEY) == LOGIC_SEMANTICS


def _check_weights_normalized(g: pcir.Group, sums: np.ndarray, unit: str = "node",
                              model: pcir.Model | None = None) -> None:
    if model is not None and is_logic(model):
        return
    err = np.abs(sums - 1.0)
    if (err > NORMALIZATION_TOL).any():
        i = _first_bad(err > NORMALIZATION_TOL)
        _fail("normalized-weights", g, f"the weights of parent {unit} {i} sum to "
              f"{sums.reshape(-1)[i]:.8g}, not 1", i)


def _check_weight_values(g: pcir.Group, weights: np.ndarray) -> None:
    # Fast path: min and max make no temporaries (isfinite / < 0 would
    # allocate a bool array the size of the weights: ~1 GB of them for a
    # 146M-edge circuit loaded from a .pcc); NaN propagates through min.
    if weights.size == 0 or (weights.min() >= 0 and np.isfinite(weights.max())):
        return
    if not np.isfinite(weights).all():
        _fail("weight-values", g, f"weights {g.sum.weights!r} hold NaN or infinity")
    if (weights < 0).any():
        _fail("weight-values", g, f"weights {g.sum.weights!r} hold a negative value at flat "
              f"index {_first_bad(weights < 0)}")


def _block_rows_clear(w: np.ndarray, starts: np.ndarray) -> bool:
    """True when every parent row of block-sparse weights `w` ([E, B, B],
    finite and non-negative, edges grouped by parent block from `starts`)
    surely sums to 1 within NORMALIZATION_TOL; False sends the caller to
    the exact float64 sums, which decide and name the row.

    float32 blocks are summed by one matrix-vector product, in float32
    (7x faster than numpy's float64 reduction of bsp050's 236 MB). A sum
    of B non-negative terms, in any order, is off by at most
    B * 2^-24 / (1 - B * 2^-24) of itself (Higham, "Accuracy and Stability
    of Numerical Algorithms", 2nd ed., eq. 4.4); the partial sums are then
    added in float64. A row is cleared only where that bound, for a true
    sum near 1, still leaves it inside the tolerance (blocks of up to
    about 160 columns; wider ones always take the exact sums)."""
    b = w.shape[-1]
    rel = b * 2.0 ** -24 / (1 - b * 2.0 ** -24)
    # |sum - 1| <= limit + rel * (true sum) <= tol for a true sum <= (1 + limit) / (1 - rel)
    limit = NORMALIZATION_TOL - rel * (1 + NORMALIZATION_TOL) / (1 - rel) - 1e-12
    if w.dtype != np.float32 or not w.flags.c_contiguous or limit <= 0:
        return False
    partial = (w @ np.ones(b, np.float32)).astype(np.float64)    # [E, B]
    sums = np.add.reduceat(partial, starts, axis=0)
    return bool((np.abs(sums - 1.0) <= limit).all())


def _check_sum(model: pcir.Model, g: pcir.Group, table: _Tensors, tied: bool) -> None:
    scope = list(g.scope)
    for c in g.sum.children:
        if list(model.groups[c].scope) != scope:
            _fail("smoothness", g, f"child {c} has scope of {len(model.groups[c].scope)} "
                  f"variables, not the group's scope ({len(scope)} variables)", c)
    n, cols, pattern = g.num_nodes, _sum_child_cols(model, g), g.sum.pattern
    if pattern not in (pcir.DENSE, pcir.BLOCK_SPARSE, pcir.SPARSE):
        _fail("edge-pattern", g, f"edge pattern {pattern} is not set or unknown", pattern)
    if tied and g.sum.weights:
        _fail("tie-params", g, f"a tied group must leave weights empty, not {g.sum.weights!r}")
    if pattern == pcir.DENSE:
        if tied:
            return
        w = table.get(g.sum.weights, "weights", g, ndim=2)
        _shape(w, (n, cols), f"weights {g.sum.weights!r}", g)
        _check_weight_values(g, w)
        _check_weights_normalized(g, w.sum(axis=1, dtype=np.float64), model=model)
        return
    edges = table.get(g.sum.edges, "edges", g, dtypes=INT_DTYPES, ndim=2)
    if pattern == pcir.BLOCK_SPARSE:
        b = g.sum.block_size
        if b < 1 or n % b or cols % b:
            _fail("block-size", g, f"block size {b} does not divide num_nodes {n} and the "
                  f"{cols} child columns", b)
        _check_edge_list(g, edges, n // b, cols // b, "block")
        if tied:
            return
        w = table.get(g.sum.weights, "weights", g, ndim=3)
        _shape(w, (len(edges), b, b), f"weights {g.sum.weights!r}", g)
        _check_weight_values(g, w)
        if is_logic(model):
            return
        starts = np.flatnonzero(np.r_[True, np.diff(edges[:, 0]) != 0])
        if _block_rows_clear(w, starts):
            return
        per_edge = w.sum(axis=2, dtype=np.float64)                # [E, B] per parent row
        sums = np.add.reduceat(per_edge, starts, axis=0)          # [n / B, B]
        _check_weights_normalized(g, sums.reshape(-1), model=model)
    else:
        if g.sum.block_size not in (0, 1):
            _fail("block-size", g, f"a sparse group has block size {g.sum.block_size}")
        _check_edge_list(g, edges, n, cols, "node")
        if tied:
            return
        w = table.get(g.sum.weights, "weights", g, ndim=1)
        _shape(w, (len(edges),), f"weights {g.sum.weights!r}", g)
        _check_weight_values(g, w)
        _check_weights_normalized(g, np.bincount(edges[:, 0], weights=w, minlength=n),
                                  model=model)


def _check_tie(model: pcir.Model, g: pcir.Group, target: pcir.Group, table: _Tensors) -> None:
    what = f"tie target {target.id}"
    if g.kind != target.kind:
        _fail("tie-kind", g, f"{what} is a {_KIND_NAMES.get(target.kind, '?')} group, "
              f"this one a {_KIND_NAMES.get(g.kind, '?')} group")
    if g.kind == pcir.PRODUCT:
        _fail("tie-kind", g, "product groups have no parameters to tie")
    if g.num_nodes != target.num_nodes:
        _fail("tie-shape", g, f"num_nodes {g.num_nodes} != {what}'s {target.num_nodes}")
    if g.kind == pcir.INPUT:
        v, tv = model.variables[g.input.variable], model.variables[target.input.variable]
        if g.input.dist != target.input.dist or \
                params_per_node(g.input.dist, v.num_cats) != \
                params_per_node(target.input.dist, tv.num_cats):
            _fail("tie-shape", g, f"distribution or parameter width differs from {what}'s")
        if not target.input.params:
            _fail("tie-params", g, f"{what} has no params tensor")
        return
    s, t = g.sum, target.sum
    if s.pattern != t.pattern or s.block_size != t.block_size:
        _fail("tie-shape", g, f"edge pattern/block size differs from {what}'s")
    sizes = [model.groups[c].num_nodes for c in s.children]
    if sizes != [model.groups[c].num_nodes for c in t.children]:
        _fail("tie-shape", g, f"child sizes {sizes} differ from {what}'s")
    if s.pattern != pcir.DENSE:
        mine = table.get(s.edges, "edges", g, dtypes=INT_DTYPES)
        theirs = table.get(t.edges, "edges", target, dtypes=INT_DTYPES)
        if not np.array_equal(mine, theirs):
            _fail("tie-shape", g, f"edges {s.edges!r} differ from {what}'s {t.edges!r}")
    if not t.weights:
        _fail("tie-params", g, f"{what} has no weights tensor")


# ---------------------------------------------------------------- driver

def _run(rule_fn: Callable[[], None], errors: list[CheckError] | None) -> bool:
    """Run one unit of checks; in collect mode record its violation and go on."""
    if errors is None:
        rule_fn()
        return True
    try:
        rule_fn()
        return True
    except CheckError as exc:
        errors.append(exc)
        return False


def _check_groups(model: pcir.Model, table: _Tensors, ties: dict[int, int],
                  shapes: dict[str, tuple] | None, errors: list[CheckError] | None) -> list[bool]:
    """The per-group rules; per group, whether they held.

    The vectorised screen (ir/group_screen.py) clears the groups that
    provably hold every rule; the exact rules above run on the others, in
    group order, so messages and their order are theirs. Small input groups
    have their values checked in batches after the loop, one batch per
    (dist, width) in order of first appearance among all groups.
    `shapes`: name -> (dtype, dims, bytes) of every tensor (see
    check_tensor_bytes), None when the tensor-bytes rules failed.
    """
    count = len(model.groups)
    if shapes is not None:
        flagged, cleared = screen_groups(model, table, shapes, ties, is_logic(model))
    else:               # no tensor decodes: every group's message comes from its rules
        flagged, cleared = np.ones(count, dtype=bool), []
    firsts: dict[tuple[int, int], int] = {}
    for g, key in cleared:
        firsts.setdefault(key, g)
    pending = sorted((g, key) for key, g in firsts.items())
    header_ok = [True] * count
    batch: dict[tuple[int, int], list] = {}
    k = 0
    for index in np.flatnonzero(flagged).tolist():
        while k < len(pending) and pending[k][0] < index:
            batch.setdefault(pending[k][1], [])
            k += 1
        g = model.groups[index]

        def group_rules(g=g, index=index):
            _check_header(model, g, index)
            if g.kind == pcir.INPUT:
                _check_input(model, g, table, g.id in ties, batch)
            elif g.kind == pcir.PRODUCT:
                _check_product(model, g, table)
            else:
                _check_sum(model, g, table, g.id in ties)
        header_ok[index] = _run(group_rules, errors)
    for (dist, _), items in batch.items():
        if items:
            _check_input_batch(items, dist, errors)
    return header_ok


def check(model: pcir.Model, collect: bool = False, arrays=None,
          decoded: dict | None = None) -> list[CheckError]:
    """Check every invariant of `model` (see ir/pcir.proto).

    Raises the first CheckError, or with `collect=True` returns the list of
    violations (empty when the model is valid). `arrays`: name -> numpy of
    tensors held outside the message (a mapped .pcc's parameters).
    `decoded`: receives name -> read-only numpy of the tensors the checks
    decoded, when the model is valid (the verify pass hands them to the
    node passes, which would decode them again).
    """
    errors: list[CheckError] | None = [] if collect else None
    _run(lambda: check_version(model.ir_version), errors)
    shapes: dict[str, tuple] = {}
    tensors_ok = _run(lambda: check_tensor_bytes(model.tensors, arrays=arrays, shapes=shapes),
                      errors)
    _run(lambda: _check_variables(model), errors)
    ties: dict[int, int] = {}

    def tie_rules():
        ties.update(_tie_map(model))
    ties_ok = _run(tie_rules, errors)
    table = _Tensors(model.tensors, arrays, shapes if tensors_ok else None)
    if not tensors_ok:     # byte counts are wrong somewhere: decode nothing
        table.protos = {}
    if model.HasField("nodes"):
        _run(lambda: check_node_model(model, table, is_logic(model)), errors)
        if decoded is not None and not errors:
            decoded.update(table.cache)
        return errors or []
    header_ok = _check_groups(model, table, ties, shapes if tensors_ok else None, errors)
    if ties_ok:
        for g, t in ties.items():
            if header_ok[g] and header_ok[t]:
                _run(lambda g=g, t=t: _check_tie(model, model.groups[g], model.groups[t],
                                                 table), errors)
    _run(lambda: _check_roots(model), errors)
    return errors or []
