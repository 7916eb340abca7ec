"""`from_sdd(path)`: an SDD (the SDD library's .sdd + .vtree text files) as a
logic-circuit pcir.Model.

Mapping. Every variable v of the vtree becomes a binary variable X(v-1)
(categorical, 2 categories). Literal -v / +v are the nodes of one input group
per variable with fixed indicator parameters [1, 0] / [0, 1]. A decision node
(OR of elements prime AND sub) is a sum node with weight 1 on every edge; its
elements are product nodes. The Model carries metadata semantics=logic, so
the checker accepts its unnormalised sums, and it evaluates the counting /
weighted-model-count semiring (pccompiler.logic).

Groups follow the vtree, which gives scopes for free: for every vtree node w
one sum group S_w over exactly vars(w) holds the decision nodes normalized
for w plus one tautology node (last index); a leaf's S_w holds -v, +v, T over
the variable's input group. The elements of decisions at w form one product
group per (prime vtree, sub vtree) pair; an element whose prime sits below
left(w) is smoothed by multiplying in the tautology nodes of the siblings on
the path up to left(w) (likewise subs), so every sum is smooth and queries
are exact without a separate pass. Constants fold: an element with a false
prime or sub is dropped (a decision left empty is false), a true prime or
sub is the tautology of its side. Equal elements of one decision merge, and
equal elements of different decisions share one product node.
A prime not under left(w) (or sub not under right(w)) breaks decomposability
and is refused with an error naming the node and its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend.logic_text import Records, check_counts, column, counts_as_expected, \
    read_records
from pccompiler.ir import heap
from pccompiler.ir.nodes import chunk_bounds, concat_ranges, index_dtype
from pccompiler.frontend.sdd_groups import D as _D, F as _F, L as _L, T as _T, build
from pccompiler.frontend.sdd_nodes import NotDecomposable, build_nodes

pcir = ir.pcir
FORMS = ("groups", "nodes")


@dataclass
class Vtree:
    left: np.ndarray      # int64 [N] left child (-1 for leaves)
    right: np.ndarray     # int64 [N]
    parent: np.ndarray    # int64 [N] (-1 for the root)
    var: np.ndarray       # int64 [N] variable 1..n of a leaf (0 for internal nodes)
    post: list            # node ids, children before parents
    root: int
    lo: np.ndarray        # leaves of the subtree of w are in-order ranks lo[w] .. hi[w]-1
    hi: np.ndarray
    order: np.ndarray     # variables (0-based) by in-order leaf rank
    num_vars: int

    def scope(self, w: int) -> list[int]:
        return sorted(int(v) for v in self.order[self.lo[w]:self.hi[w]])

    def under(self, u: np.ndarray, w: int) -> np.ndarray:
        """Whether each vtree node u lies in the subtree of w."""
        return (self.lo[u] >= self.lo[w]) & (self.hi[u] <= self.hi[w])

    def siblings(self, u: int, top: int) -> list[int]:
        """Siblings on the path from u up to (not including) its ancestor top."""
        out = []
        while u != top:
            p = int(self.parent[u])
            out.append(int(self.right[p] if self.left[p] == u else self.left[p]))
            u = p
        return out


def read_vtree(path: str | Path) -> Vtree:
    rec = read_records(path, "vtree", b"LI")
    if not counts_as_expected(rec, {"L": 2, "I": 3}):
        check_counts(rec, "L", 2, "id variable")      # (names the first bad line)
        check_counts(rec, "I", 3, "id left right")
    n = _header_count(rec, "vtree")
    ids = column(rec, np.arange(len(rec.keys)), 0)
    _check_ids(rec, ids, n, "vtree node")
    leaf = rec.keys == ord("L")
    left, right = np.full(n, -1), np.full(n, -1)
    var, parent = np.zeros(n, dtype=np.int64), np.full(n, -1)
    var[ids[leaf]] = column(rec, np.flatnonzero(leaf), 1)
    inner = np.flatnonzero(~leaf)
    left[ids[inner]], right[ids[inner]] = column(rec, inner, 1), column(rec, inner, 2)
    pos = np.full(n, -1)
    pos[ids] = np.arange(len(ids))
    for kids, side in ((left, "left"), (right, "right")):
        k = kids[ids[inner]]
        bad = (k < 0) | (k >= n)
        bad[~bad] = pos[k[~bad]] >= inner[~bad]
        if bad.any():
            r = inner[np.argmax(bad)]
            raise rec.fail(r, f"{side} child {int(k[np.argmax(bad)])} is not a vtree node "
                              "defined on an earlier line")
        parent[k] = ids[inner]
    kids = np.concatenate((left[ids[inner]], right[ids[inner]]))
    if np.bincount(kids, minlength=n).max(initial=0) > 1:
        raise LoadError(f"{rec.path}: a vtree node has two parents")
    nv = int(leaf.sum())
    vs = np.sort(var[ids[leaf]])
    if not np.array_equal(vs, np.arange(1, nv + 1)):
        raise LoadError(f"{rec.path}: the leaves must hold the variables 1..{nv} once each")
    roots = np.flatnonzero(parent == -1)
    if len(roots) != 1:
        raise LoadError(f"{rec.path}: the vtree has {len(roots)} roots, not 1")
    post = ids.tolist()                    # file order is bottom-up
    leaf_ids = ids[leaf]
    # In-order ranks: leaf counts bottom-up (file order), then each left
    # child starts where its parent does and each right child after its
    # sibling's leaves; plain loops over Python lists (a numpy scalar read
    # per step costs more than the step).
    lft, rgt = left.tolist(), right.tolist()
    size = [1] * n
    for w in post:
        if lft[w] >= 0:
            size[w] = size[lft[w]] + size[rgt[w]]
    lo_l = [0] * n
    for w in reversed(post):
        if lft[w] >= 0:
            lo_l[lft[w]] = lo_l[w]
            lo_l[rgt[w]] = lo_l[w] + size[lft[w]]
    lo_a = np.array(lo_l, dtype=np.int64)
    hi_a = lo_a + np.array(size, dtype=np.int64)
    order = np.zeros(nv, dtype=np.int64)
    order[lo_a[leaf_ids]] = var[leaf_ids] - 1
    return Vtree(left, right, parent, var, post, int(roots[0]), lo_a, hi_a, order, nv)


def _header_count(rec: Records, word: str) -> int:
    if len(rec.header_ints) != 1 or rec.header_ints[0] < 0:
        raise LoadError(f"{rec.path}:{rec.header_line}: expected '{word} COUNT'")
    n = int(rec.header_ints[0])
    if len(rec.keys) != n:
        raise LoadError(f"{rec.path}:{rec.header_line}: the header says {n} nodes, "
                        f"the file has {len(rec.keys)}")
    return n


def _check_ids(rec: Records, ids: np.ndarray, n: int, what: str) -> None:
    bad = (ids < 0) | (ids >= n)
    if bad.any():
        r = int(np.argmax(bad))
        raise rec.fail(r, f"{what} id {int(ids[r])} is outside 0..{n - 1}")
    if np.bincount(ids, minlength=n).max(initial=0) <= 1:
        return
    first = np.unique(ids, return_index=True)[1]
    seen_twice = np.ones(len(ids), dtype=bool)
    seen_twice[first] = False
    if seen_twice.any():
        r = int(np.argmax(seen_twice))
        raise rec.fail(r, f"{what} id {int(ids[r])} is defined twice")


_KINDS = {ord("F"): _F, ord("T"): _T, ord("L"): _L, ord("D"): _D}


def from_sdd(path: str | Path, vtree: str | Path | None = None, name: str = "",
             form: str = "groups") -> pcir.Model:
    """Import an SDD file and its vtree (default: the same name with .vtree).

    form: "groups" (one sum group per vtree node, as described above) or
    "nodes" (a pcir.NodeCircuit, one node per circuit node: linear-time
    import and compile for large SDDs; see frontend/sdd_nodes.py).

    The file is checked here (ids, references to earlier lines, vtree
    nodes, literals, decomposability) and the Model is built to pass
    ir.check (tests/logic run ir.check on every form's output), so a caller
    that compiles it in the same process may skip re-checking it:
    pc.compile(model, check=False) or passes.compile_model(model,
    verify=False) (the checker is ~0.1 s per 100k SDD nodes, as much as the
    import). A Model saved and read back from a .pcir file is checked as
    any other."""
    if form not in FORMS:
        raise ValueError(f"from_sdd: form must be one of {FORMS}, not {form!r}")
    path = Path(path)
    with heap.retained_heap(heap.worth_it(_file_bytes(path)), release=False):   # see ir/heap.py
        try:
            return _import(path, vtree, name, form)
        except NotDecomposable:       # (rare) again, checking every element to name the bad one
            return _import(path, vtree, name, form, name_bad_element=True)


def _file_bytes(path: Path) -> int:
    """The file's size (0 when it cannot be read: the reader says why)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _import(path: Path, vtree: str | Path | None, name: str, form: str,
            name_bad_element: bool = False) -> pcir.Model:
    """from_sdd's work (the reader, the checks, the chosen form's builder;
    name_bad_element: see build_nodes)."""
    vt = read_vtree(vtree if vtree is not None else path.with_suffix(".vtree"))
    rec = read_records(path, "sdd", b"FTLD", narrow=True)
    dsel = np.flatnonzero(rec.keys == ord("D"))
    if (rec.counts[dsel] < 3).any() or not counts_as_expected(
            rec, {"F": 1, "T": 1, "L": 3, "D": 3}, dsel, 2 * column(rec, dsel, 2)):
        _check_sdd_counts(rec, dsel)                  # names the first bad line
    n = _header_count(rec, "sdd")
    ids = column(rec, np.arange(len(rec.keys)), 0).astype(np.int64)   # (int32 read)
    _check_ids(rec, ids, n, "sdd node")
    kind = np.zeros(n, dtype=np.int8)             # F, T, L, D codes (1 byte per gather)
    kind[ids] = _kind_codes(rec.keys)
    rec_of = np.zeros(n, dtype=np.int64)
    rec_of[ids] = np.arange(len(ids))
    nvt = len(vt.left)
    home, idx = np.full(n, -1), np.full(n, -1)
    # literals
    lsel = np.flatnonzero(rec.keys == ord("L"))
    lvt, lit = column(rec, lsel, 1), column(rec, lsel, 2)
    bad = (lvt < 0) | (lvt >= nvt)
    bad[~bad] = vt.var[lvt[~bad]] != np.abs(lit[~bad])
    if bad.any():
        r = lsel[np.argmax(bad)]
        raise rec.fail(r, f"literal {int(lit[np.argmax(bad)])} does not belong to vtree "
                          f"node {int(lvt[np.argmax(bad)])}")
    home[ids[lsel]], idx[ids[lsel]] = lvt, (lit > 0).astype(np.int64)
    # decisions and their elements
    dvt = column(rec, dsel, 1)
    bad = (dvt < 0) | (dvt >= nvt)
    bad[~bad] = vt.left[dvt[~bad]] < 0
    if bad.any():
        raise rec.fail(dsel[np.argmax(bad)], f"decision vtree {int(dvt[np.argmax(bad)])} is "
                                             "not an internal vtree node")
    home[ids[dsel]] = dvt
    k = column(rec, dsel, 2)
    e_dec = np.repeat(ids[dsel].astype(index_dtype(n)), k)   # int32 ids: half the bytes
    prime, sub = _prime_sub(rec, dsel, len(e_dec))
    if not _earlier_nodes(prime, sub, rec_of, e_dec):          # (the usual case: all are)
        e_rec = rec_of[e_dec]           # each element's record
        for child, what in ((prime, "prime"), (sub, "sub")):
            bad = (child < 0) | (child >= n)
            bad[~bad] = (kind[child[~bad]] == 0) | (rec_of[child[~bad]] >= e_rec[~bad])
            if bad.any():
                raise rec.fail(e_rec[np.argmax(bad)], f"{what} {int(child[np.argmax(bad)])} is "
                                                      "not a node defined on an earlier line")
    if form == "nodes":
        elements = [e_dec, prime, sub]            # build_nodes drops each once used
        del e_dec, prime, sub
        rec.header_ints = rec.header_ints.copy()  # read: only the line numbers are used now,
        rec.ints = np.zeros(0, dtype=rec.ints.dtype)   # so the integers go (no view keeps them)
        return build_nodes(vt, rec, kind, home, idx, rec_of, elements, int(ids[-1]),
                           name or path.stem, str(path), name_bad_element)
    return build(vt, rec, kind, home, idx, rec_of, e_dec, prime, sub, int(ids[-1]),
                 name or path.stem, str(path))


def _check_sdd_counts(rec: Records, dsel: np.ndarray) -> None:
    """Raises LoadError naming the first record (keyword by keyword) with
    the wrong number of integers for its kind (`dsel`: the D records);
    run when counts_as_expected found one."""
    for k, c, what in (("F", 1, "id"), ("T", 1, "id"), ("L", 3, "id vtree literal")):
        check_counts(rec, k, c, what)
    short = rec.counts[dsel] < 3
    if short.any():
        raise rec.fail(dsel[np.argmax(short)], "a 'D' record needs id vtree count {prime sub}*")
    check_counts(rec, "D", 3 + 2 * column(rec, dsel, 2), "id vtree count {prime sub}*")


def _prime_sub(rec: Records, dsel: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """The primes and subs of the `total` elements, decision by decision
    (the decisions `dsel` in file order). A decision's integers after its
    first three alternate prime, sub; every other record's integers are
    its header. One mask over the integers, whose kept values are dealt
    to primes and subs a chunk at a time (no array of all pairs: fresh
    memory costs 1-2.5 ms per MB on a small VM; a gather of the 12M
    elements of a 10^6-node SDD through index arrays took 0.2 s CPU, this
    0.1 s). Both in the integers' dtype (int32 when the reader read them
    so: 96 MB less fresh memory at 10^6 SDD nodes)."""
    head = rec.counts.copy()
    head[dsel] = 3
    element = np.ones(len(rec.ints), dtype=bool)
    element[:int(rec.starts[0]) if len(rec.starts) else len(rec.ints)] = False   # the header's
    element[concat_ranges(rec.starts, head)] = False
    prime, sub = np.empty(total, dtype=rec.ints.dtype), np.empty(total, dtype=rec.ints.dtype)
    done = 0                                          # values dealt so far (2 per element)
    for a, b in chunk_bounds(len(rec.ints)):
        values = rec.ints[a:b][element[a:b]]
        for out, parity in ((prime, 0), (sub, 1)):
            skip = (parity - done) % 2                # values[skip] is this side's next one
            part = values[skip::2]
            at = (done + skip) // 2
            out[at:at + len(part)] = part
        done += len(values)
    return prime, sub


def _earlier_nodes(prime: np.ndarray, sub: np.ndarray, rec_of: np.ndarray,
                   e_dec: np.ndarray) -> bool:
    """Whether every prime and sub id names a node defined on a line
    before its element's record, chunk by chunk (no 10^7-entry
    temporaries): an id in 0..n-1 names a node (the header's n records
    hold n distinct ids in that range: _header_count, _check_ids), so
    its record is the one test; the elements' records are gathered once
    for both sides, from the records' table in int32 (half the cache
    lines of the int64 one)."""
    n = len(rec_of)
    rec_of = rec_of.astype(index_dtype(n))
    for a, b in chunk_bounds(len(prime)):
        e_rec = rec_of[e_dec[a:b]]
        for c in (prime[a:b], sub[a:b]):
            if len(c) and (int(c.min()) < 0 or int(c.max()) >= n or (rec_of[c] >= e_rec).any()):
                return False
    return True


def _kind_codes(keys: np.ndarray) -> np.ndarray:
    table = np.zeros(256, dtype=np.int8)
    for key, code in _KINDS.items():
        table[key] = code
    return table[keys]
