"""The node form (pcir.NodeCircuit) of an imported SDD, in whole-array steps.

`build_nodes` turns the checked node arrays of sdd.py into one node per
circuit node, with no groups, so import and compile cost no Python per
vtree node or per node. Node ids (children before parents):

  * 2V indicator inputs: node 2v + c is [x_v = c] (variable order = the
    vtree's in-order leaves, so every vtree node covers one interval);
  * one tautology per vtree node, in the vtree file's bottom-up order: a
    leaf's is the sum [x_v = 0] + [x_v = 1], an internal node's the product
    of its children's;
  * then, in SDD file order, each decision's new element products followed
    by the decision (a sum of weight 1 over its distinct element products).

SDD literals are the input nodes themselves; a true prime (sub) is the
tautology of left(w) (right(w)); constants fold as in the group form (an
element with a false prime or sub is dropped, a decision left without
elements is false). An element (prime p, sub s) at vtree node w is the
product of p, the tautologies of the siblings on the path from p's vtree
node up to left(w), s, and those from s's up to right(w): smooth and
decomposable with scope = the interval of w. Equal elements (w, p, s)
share one product node; a decision lists each product once.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend.logic_text import Records
from pccompiler.frontend.sdd_groups import D, T, L, child_index, element_homes, \
    fold_false, pack_rows, sibling_paths, unique_few, unique_rows_taken, unique_sorted, \
    unpack_rows
from pccompiler.ir.checker import LOGIC_SEMANTICS, SEMANTICS_KEY
from pccompiler.ir.nodes import (INPUT, PRODUCT, SUM, NodeArrays, chunk_bounds, gather_ranges,
                                  index_dtype, row_chunks, set_nodes, stable_argsort)

pcir = ir.pcir


class NotDecomposable(Exception):
    """build_nodes found an element product that breaks decomposability
    (checked on the distinct products, which no longer know their
    elements' lines): the caller imports again with name_bad_element=True,
    which checks every element first and names the first bad one."""


def build_nodes(vt, rec: Records, kind: np.ndarray, home: np.ndarray, idx: np.ndarray,
                rec_of: np.ndarray, elements: list[np.ndarray], root: int, name: str,
                source: str, name_bad_element: bool = False) -> pcir.Model:
    """The node-form logic-circuit Model of the SDD (see the module docstring).
    `elements` = [decision, prime, sub] of every element (an element's
    record is rec_of[decision]: no fourth array); the list
    is emptied, and each array is dropped once used: the import of a
    10^6-node SDD holds about 15 arrays of 10^7 entries, and every GB of
    peak memory costs seconds of page faults on a small VM.
    Decomposability is checked on the distinct element products, on the
    one decoding of their rows that _product_children makes anyway (the
    rule depends on (w, prime, sub) alone, so equal elements agree; a
    check of every element first was 0.2-0.28 s of 2.7 s at 10^6 SDD
    nodes); a failure raises NotDecomposable, and name_bad_element=True
    checks every element up front instead, naming the first bad one."""
    e_dec, prime, sub = elements
    elements.clear()
    nv, nvt = vt.num_vars, len(vt.left)
    post = np.asarray(vt.post, dtype=np.int64)
    pos = np.empty(nvt, dtype=np.int64)
    pos[post] = np.arange(nvt)
    live = []
    false = fold_false(vt, kind, home, e_dec, prime, sub, live)
    if false[root]:
        raise LoadError(f"{source}: the circuit is false (unsatisfiable): nothing to import")
    taut = 2 * nv + pos                                   # tautology node of vtree node w
    # Live elements and their (w, prime, sub) products.
    dec, p, s = _live(live.pop(), [e_dec, prime, sub])
    del e_dec, prime, sub
    w = home[dec]
    if name_bad_element and not _decomposable(vt, kind, home, w, p, s):
        element_homes(vt, rec, kind, home, pos, w, dec, rec_of, p, s)   # names the first one
        raise LoadError(f"{source}: an element is not decomposable")   # (not reached)
    rows = [w, p, s]                       # freed once packed into a key
    del w, p, s
    inv, columns, row_key, row_rec = _element_rows(rows, rec_of, dec)
    decs = np.flatnonzero((kind == D) & ~false)
    base = 2 * nv + nvt
    prod_id, dec_id = _new_ids(row_key, row_rec, rec_of[decs], base)
    del row_key, row_rec                   # (`columns` keeps the keys)
    node_of = np.full(len(kind), -1, dtype=np.int64)
    lits = np.flatnonzero(kind == L)
    node_of[lits] = 2 * (vt.var[home[lits]] - 1) + idx[lits]
    node_of[decs] = dec_id
    # Decision children: its distinct element products (elements come grouped
    # by decision, in file order, so the pairs are sorted but for the products);
    # made before the products' children, so the elements' arrays are gone
    # by then (a lower peak of memory).
    d_par, d_kid = _distinct_pairs(node_of, dec, prod_id, inv)
    del dec, inv
    d_par -= base
    dec_fan = np.bincount(d_par, minlength=len(prod_id) + len(dec_id))[dec_id - base]
    del d_par
    n = base + len(prod_id) + len(dec_id)
    children = _product_children(vt, home, taut, node_of, columns, prod_id, index_dtype(n))
    if children is None:
        if name_bad_element:                # (the element check above passed: not reached)
            raise LoadError(f"{source}: an element is not decomposable")
        raise NotDecomposable(source)
    prod_fan, fill_products = children
    del columns
    lo, hi = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)   # as stored
    _tail_scopes(vt, home, decs, dec_id, base, (lo, hi))
    kinds = np.empty(n, dtype=np.uint8)
    fan = np.zeros(n, dtype=np.int32)                  # fan-ins < 2^31: half the bytes
    var_pos = np.empty(nv, dtype=np.int64)
    var_pos[vt.order] = np.arange(nv)
    kinds[:2 * nv] = INPUT
    lo[:2 * nv] = np.repeat(var_pos, 2)
    hi[:2 * nv] = lo[:2 * nv] + 1
    leaf = vt.left[post] < 0
    kinds[2 * nv:base] = np.where(leaf, SUM, PRODUCT)
    fan[2 * nv:base] = 2
    lo[2 * nv:base], hi[2 * nv:base] = vt.lo[post], vt.hi[post]
    kinds[base:] = PRODUCT                 # the products and decisions, then the decisions
    kinds[dec_id] = SUM
    fan[prod_id] = prod_fan
    del prod_fan
    fan[dec_id] = dec_fan
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = fan                      # then summed in place: a cumsum casting int32 to
    np.cumsum(offsets[1:], out=offsets[1:])   # int64 on the way took twice as long
    kids = np.empty(int(offsets[-1]), dtype=index_dtype(n))
    tw = post[~leaf]
    kids[offsets[2 * nv:base][leaf][:, None] + np.arange(2)] = \
        2 * (vt.var[post[leaf]] - 1)[:, None] + np.arange(2)
    kids[offsets[2 * nv:base][~leaf][:, None] + np.arange(2)] = \
        np.stack([taut[vt.left[tw]], taut[vt.right[tw]]], axis=1)
    fill_products(kids, offsets, prod_id)
    del fill_products, prod_id
    # every live decision's children, in id order (d_par ascends), copied
    # to the decisions' child ranges a chunk at a time
    ascending = not (dec_id[1:] < dec_id[:-1]).any()           # as records in file order
    dsorted = dec_id if ascending else np.sort(dec_id)
    d_fan = fan[dsorted]
    gather_ranges(d_kid, np.cumsum(d_fan) - d_fan, d_fan, out=kids, dest=offsets[dsorted])
    del d_kid
    sum_edges = int(fan[dec_id].sum()) + 2 * int(leaf.sum())
    del fan
    root_id, extra = _root(vt, kind, home, node_of, taut, root)
    if extra is not None:                  # smooth a root below the vtree root: one more node
        root_id = n
        kinds = np.r_[kinds, np.uint8(PRODUCT)]
        lo, hi = np.r_[lo, np.int32(0)], np.r_[hi, np.int32(nv)]
        offsets = np.r_[offsets, offsets[-1] + len(extra)]
        kids = np.r_[kids, np.asarray(extra, dtype=kids.dtype)]
    arrays = NodeArrays(
        kind=kinds, child_offsets=offsets, child_ids=kids, sum_weights=None,
        input_vars=np.repeat(np.arange(nv, dtype=np.int32), 2),
        input_params=np.tile(np.eye(2), (nv, 1)), variable_order=vt.order.astype(np.int32),
        scope_lo=lo, scope_hi=hi, roots=np.array([root_id]))
    del kinds, offsets, kids, lo, hi       # the Model takes them one by one (_model)
    return _model(nv, arrays, name, sum_edges)


def _live(keep: np.ndarray, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """[a[keep] for a in arrays], written over the fronts of the arrays
    themselves a chunk at a time (views of them; `arrays` is emptied, the
    caller holds no other reference): no four fresh arrays of 10^7
    entries when some elements are false, and nothing done when all live.
    Safe in place: a chunk's kept entries are read out before they are
    written, to positions no later chunk reads."""
    arrays, taken = list(arrays), arrays
    taken.clear()
    if keep.all():
        return arrays
    done = 0
    for a, b in chunk_bounds(len(keep)):
        at = np.flatnonzero(keep[a:b])
        at += a
        for array in arrays:
            array[done:done + len(at)] = array[at]
        done += len(at)
    return [array[:done] for array in arrays]


def _decomposable(vt, kind: np.ndarray, home: np.ndarray, w: np.ndarray, p: np.ndarray,
                  s: np.ndarray) -> bool:
    """Whether every prime p lies under left(w) and every sub s under
    right(w) (element_homes' rule; a true prime or sub does by
    definition): the in-order leaf interval of each child's vtree node
    within that of its side, through an interval per SDD node (int32,
    the true node's empty) and per vtree node's side, a chunk at a time:
    four lookups a side where element_homes takes seven."""
    true = kind == T
    big = np.iinfo(np.int32).max
    node_lo = np.where(true, big, vt.lo[home]).astype(np.int32)
    node_hi = np.where(true, -1, vt.hi[home]).astype(np.int32)
    sides = []                                      # (lo, hi) of left(w), right(w) by w
    for side in (vt.left, vt.right):
        top = np.where(side >= 0, side, 0)          # (w is always an inner vtree node)
        sides.append((vt.lo[top], vt.hi[top]))
    for a, b in chunk_bounds(len(w)):
        ww = w[a:b]
        for (top_lo, top_hi), c in zip(sides, (p[a:b], s[a:b])):
            if (node_lo[c] < top_lo[ww]).any() or (node_hi[c] > top_hi[ww]).any():
                return False
    return True


def _element_rows(rows: list, rec_of: np.ndarray, dec: np.ndarray):
    """(each element's product row, columns, each row's key, each row's
    record) of the element rows [w, p, s] (the list is emptied): see
    _product_rows. columns(sel) gives the (w, p, s) columns of the rows
    `sel` (a slice or index array), decoded from the keys when asked (no
    three columns of 10^7 rows held beside the keys). The key is the rows'
    packed int64 key, or where that does not fit, the rank of each row
    among the sorted distinct rows (the same order and equality)."""
    packed = pack_rows(rows)
    if packed is not None:
        key, span = packed
        del packed
        inv, row_key, row_rec = _product_rows(key, rec_of, dec)
        del key
        return inv, lambda sel: unpack_rows(row_key[sel], span), row_key, row_rec
    distinct, rank = unique_rows_taken(rows)
    inv, row_key, row_rec = _product_rows(rank, rec_of, dec)
    return inv, lambda sel: [c[row_key[sel]] for c in distinct], row_key, row_rec


def _product_rows(key: np.ndarray, rec_of: np.ndarray, dec: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The element products: the distinct element keys, as rows numbered
    in the order of their first elements (file order, so by record), and
    (each element's row, each row's key, each row's record: rec_of of its
    first element's decision `dec`). Of the stable
    order of the keys only the repeats are used: an element whose key
    equals its predecessor's in that order takes the row of the first
    element of its run; all others (97% in the block SDDs) start a row,
    counted in position order. No scatter through the whole order and no
    sorted list of rows: downstream, rows in this order reach the product
    ids, the child array and the node arrays almost in sequence."""
    n = len(key)
    order = stable_argsort(key)
    same = np.zeros(n, dtype=bool)
    for a, b in chunk_bounds(n - 1 if n else 0):      # same[i]: sorted key i repeats i - 1
        ordered = key[order[a:b + 1]]                 # (one gather of the keys, not two)
        np.equal(ordered[1:], ordered[:-1], out=same[a + 1:b + 1])
    repeat = np.flatnonzero(same)
    del same
    # A run of repeats r..r+m-1 belongs to the key first at r - 1 (from the
    # repeats alone: no array of all run starts).
    opens = _run_starts(repeat, 1)
    first_of = order[(repeat[opens] - 1)[np.cumsum(opens) - 1]]
    repeat = order[repeat]                            # positions of the repeats
    del order
    at_first = np.ones(n, dtype=bool)
    at_first[repeat] = False
    inv = np.cumsum(at_first, dtype=index_dtype(n))  # rows < elements: int32 ids, half the bytes
    inv -= 1
    inv[repeat] = inv[first_of]
    return inv, key[at_first], rec_of[dec[at_first]]


def _new_ids(row_key: np.ndarray, row_rec: np.ndarray, dec_rec: np.ndarray,
             base: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the element products (rows of _product_rows: by first
    element, so by record `row_rec`, non-decreasing) and of the live
    decisions (records `dec_rec`): by SDD record, each record's new
    products in key order, right before it. Counted, not sorted: only the
    records whose rows are out of key order (a fifth of them in the block
    SDDs) are sorted (lexsort by record, then key)."""
    down = np.flatnonzero(row_key[1:] < row_key[:-1])
    down = down[row_rec[down] == row_rec[down + 1]]   # within one record
    rows = None                                       # rows in product order (None: as they are)
    if len(down):
        out_of_order = np.zeros(int(row_rec[-1]) + 1, dtype=bool)
        out_of_order[row_rec[down]] = True
        at = np.flatnonzero(out_of_order[row_rec])    # whole records, in record order
        rows = np.arange(len(row_key))
        rows[at] = at[np.lexsort((row_key[at], row_rec[at]))]
    num_recs = int(max(row_rec[-1] if len(row_rec) else 0, dec_rec.max(initial=0))) + 1
    decs_before = np.zeros(num_recs + 1, dtype=np.int64)   # live decisions before a record
    decs_before[dec_rec + 1] = 1
    np.cumsum(decs_before, out=decs_before)
    last = base + len(row_key) + len(dec_rec)         # node ids below it: int32 when they fit
    prod_id = np.empty(len(row_key), dtype=index_dtype(last))
    for a, b in chunk_bounds(len(row_key)):           # row_rec[rows] is row_rec
        ids = np.arange(base + a, base + b)
        ids += decs_before[row_rec[a:b]]
        if rows is None:
            prod_id[a:b] = ids
        else:
            prod_id[rows[a:b]] = ids
    prods_upto = np.cumsum(np.bincount(row_rec, minlength=num_recs))   # products of records <= r
    return prod_id, base + prods_upto[dec_rec] + decs_before[dec_rec]


def _product_children(vt, home, taut, node_of, columns, prod_id, dtype):
    """(fan-in of every element product, fill(kids, offsets, ids): writes
    each product's children [prime, sibling tautologies..., sub, sibling
    tautologies...] into the child array at its start offsets[its id]), the sibling paths
    computed once per (prime vtree, sub vtree) signature. The products'
    signature keys and prime / sub nodes come from one pass over them in
    chunks, two lookups a child (home and node, int32 tables half the
    size in cache); only the true children (home -1, as the false node,
    which no live element has) are then set: a true prime covers left(w),
    a true sub right(w).
    None when a product breaks decomposability (its prime's vtree node
    not under left(w), or its sub's not under right(w)): checked on the
    way, by each child's vtree in-order position within the range of its
    side's subtree (vtree_inorder: one lookup per child and two per w,
    small int32 tables in cache)."""
    nvt = len(vt.left)
    home32, node32 = home.astype(np.int32), node_of.astype(dtype)
    inorder, sides = vtree_inorder(vt)
    num_rows = len(prod_id)
    key = np.empty(num_rows, dtype=np.int64)
    pnode = np.empty(num_rows, dtype=dtype)           # node ids (the child array's dtype)
    snode = np.empty(num_rows, dtype=dtype)
    for a, b in chunk_bounds(num_rows):
        w, p, s = columns(slice(a, b))
        for (side, first, span), c, out, sig_scale in zip(sides, (p, s), (pnode, snode),
                                                          (nvt, 1)):
            h, node = home32[c], node32[c]
            true = np.flatnonzero(h < 0)
            if len(true):
                top = side[w[true]]
                h[true], node[true] = top, taut[top]
            at = inorder[h]
            at -= first[w]
            if (at.view(np.uint32) > span[w]).any():  # (below the range: wraps above it)
                return None
            if sig_scale == 1:
                key[a:b] += h
            else:
                np.multiply(h, sig_scale, out=key[a:b], dtype=np.int64)
            out[a:b] = node
    sigs, sig_of, rep = unique_few(key) or unique_sorted(key)
    sig_w = columns(rep)[0]
    lp, lp_n = sibling_paths(vt, sigs // nvt, vt.left[sig_w])
    ls, ls_n = sibling_paths(vt, sigs % nvt, vt.right[sig_w])
    width = 2 + lp_n + ls_n

    def fill(kids: np.ndarray, offsets: np.ndarray, ids: np.ndarray) -> None:
        """The products' children into kids at offsets[ids], a chunk of
        products at a time (no array of all 11.5M starts beside the child
        array: 92 MB less at the import's peak, at 10^6 SDD nodes)."""
        for a, b in chunk_bounds(num_rows):
            child_index(taut, pnode[a:b], snode[a:b], sig_of[a:b], width, lp, lp_n, ls, ls_n,
                        kids, offsets[ids[a:b]])
    return width.astype(np.int32)[sig_of], fill      # (fan-ins: int32, as the node array's)


def _tail_scopes(vt, home: np.ndarray, decs: np.ndarray, dec_id: np.ndarray, base: int,
                 scopes: tuple[np.ndarray, np.ndarray]) -> None:
    """Writes into scopes = (lo, hi) the scopes of the nodes base..n-1, the
    element products and the live decisions `decs` (ids dec_id): _new_ids
    numbers each decision's new products right before it, and a product's
    scope is the interval of its first element's decision's vtree node, so
    the ids after one decision up to the next take the next one's scope:
    written as runs a chunk at a time, where a scatter through the 10^7
    products' ids took 0.1 s."""
    order = np.argsort(dec_id, kind="stable") if (dec_id[1:] < dec_id[:-1]).any() else None
    ids = dec_id if order is None else dec_id[order]
    w = home[decs] if order is None else home[decs[order]]
    runs = np.diff(ids, prepend=base - 1)
    ends = np.cumsum(runs)
    for out, table in zip(scopes, (vt.lo, vt.hi)):
        at_w = table[w].astype(np.int32)
        for d0, d1 in row_chunks(ends):
            e0, e1 = (int(ends[d0 - 1]) if d0 else 0), int(ends[d1 - 1])
            out[base + e0:base + e1] = np.repeat(at_w[d0:d1], runs[d0:d1])


def vtree_inorder(vt) -> tuple[np.ndarray, list]:
    """(each vtree node's in-order position (int32), and for the left and
    right sides (side, first, span): the in-order range of the subtree
    side[w] is first[w] .. first[w] + span[w] (uint32), by w). A leaf of
    in-order leaf rank r sits at 2r, an inner node at 2 hi(left) - 1
    (between its two subtrees), so the subtree of u holds exactly the
    positions 2 lo(u) .. 2 hi(u) - 2, and u' lies under u iff
    0 <= pos(u') - 2 lo(u) <= 2 (hi(u) - lo(u)) - 2: one position per
    child where the interval test reads two bounds."""
    inner = vt.left >= 0
    inorder = np.where(inner, 2 * vt.hi[np.where(inner, vt.left, 0)] - 1,
                       2 * vt.lo).astype(np.int32)
    sides = []
    for side in (vt.left, vt.right):
        top = np.where(side >= 0, side, 0)            # (w is always an inner vtree node)
        first = (2 * vt.lo[top]).astype(np.int32)
        span = (2 * (vt.hi[top] - vt.lo[top]) - 2).astype(np.uint32)
        sides.append((side, first, span))
    return inorder, sides


def _model(nv: int, arrays: NodeArrays, name: str, sum_edges: int) -> pcir.Model:
    """The logic-circuit Model holding the node arrays (indicator inputs,
    weight-1 sums, binary variables x1..xn; `sum_edges` edges of sums).
    The caller holds no other reference to `arrays`: each array is dropped
    once its tensor is written (the tensors are copies; 200-300 MB less at
    the import's peak for a 10^6-node SDD)."""
    model = ir.make_model([], [], [], name=name,
                          metadata={SEMANTICS_KEY: LOGIC_SEMANTICS, "source_format": "sdd"})
    model.MergeFromString(binary_variables(nv))     # (appended: the Model has none yet)
    set_nodes(model, arrays, release=True,
              later={"sum_weights": lambda: np.ones(sum_edges)})
    return model


def binary_variables(nv: int) -> bytes:
    """The Model field `variables` = x1..x{nv}, each categorical with 2
    categories, as protobuf wire bytes for Model.MergeFromString: one
    string join per digit count instead of a message made per variable
    (0.45 ms of a 4 ms import at 500 variables; the parse of these bytes
    takes 15 us). Record of x<d digits>: field 6 (tag '2'), length d + 7,
    then name (field 1: 0x0a, d + 1, 'x' digits), kind (field 2: 0x10,
    CATEGORICAL), num_cats (field 3: 0x18, 2); every length and value is
    below 128, one varint byte."""
    tail = f"\x10{chr(pcir.CATEGORICAL)}\x18\x02"
    parts, lo, digits = [], 1, 1
    while lo <= nv:
        hi = min(nv, 10 ** digits - 1)
        head = f"2{chr(digits + 7)}\n{chr(digits + 1)}x"
        parts.append(head + (tail + head).join(map(str, range(lo, hi + 1))) + tail)
        lo, digits = hi + 1, digits + 1
    return "".join(parts).encode("ascii")


def _distinct_pairs(node_of: np.ndarray, dec: np.ndarray, prod_id: np.ndarray,
                    inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (decision node, product node) pairs of the elements
    (node_of[dec], prod_id[inv]), sorted. The decision nodes are already
    non-decreasing and each decision's elements contiguous (else
    _distinct_pairs_sorted sorts them all), so the pairs are gathered
    straight into the two columns and only the decisions that list their
    products out of id order are sorted (a fifth of the elements of the
    block SDDs, through packed keys of those alone); equal pairs (a
    product listed twice by one decision) are dropped when there are any.
    No int64 key of every element: 95 MB less at 10^6 SDD nodes."""
    width = int(prod_id.max(initial=0)) + 1
    dtype = index_dtype(int(node_of.max(initial=0)) + width)    # _distinct_pairs_sorted's
    d_par, d_kid = np.empty(len(dec), dtype=dtype), np.empty(len(dec), dtype=dtype)
    for a, b in chunk_bounds(len(dec)):
        np.take(node_of, dec[a:b], out=d_par[a:b])
        np.take(prod_id, inv[a:b], out=d_kid[a:b])
    if (d_par[1:] < d_par[:-1]).any():
        return _distinct_pairs_sorted(d_par, d_kid, width)
    down = np.flatnonzero(d_kid[1:] < d_kid[:-1])
    down = down[d_par[down] == d_par[down + 1]]          # within one decision
    if len(down):
        unsorted = np.zeros(len(node_of), dtype=bool)
        unsorted[dec[down]] = True
        at = np.flatnonzero(unsorted[dec])               # whole decisions
        part = d_par[at].astype(np.int64)
        part *= width
        part += d_kid[at]
        part.sort()                                      # (each decision stays in place)
        d_kid[at] = part % width
    same = (d_kid[1:] == d_kid[:-1]) & (d_par[1:] == d_par[:-1])
    if same.any():
        keep = np.empty(len(d_kid), dtype=bool)          # a pair's first copy
        keep[0] = True
        np.logical_not(same, out=keep[1:])
        d_par, d_kid = d_par[keep], d_kid[keep]
    return d_par, d_kid


def _distinct_pairs_sorted(d_par: np.ndarray, d_kid: np.ndarray, width: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """_distinct_pairs when the decision nodes are not in order: one sort
    of all the packed pairs, then the distinct ones unpacked."""
    key = d_par.astype(np.int64)
    key *= width
    key += d_kid
    key.sort()
    key = key[_run_starts(key, 0)]
    pairs = tuple(np.empty(len(key), dtype=d_par.dtype) for _ in range(2))
    return np.divmod(key, width, out=pairs, casting="unsafe")


def _run_starts(values: np.ndarray, step: int) -> np.ndarray:
    """Where a run of values[i] = values[i - 1] + step begins (bool; the
    first value always): np.r_[True, ...] without np.r_'s 4 us a call,
    which the small SDDs pay several times per import."""
    starts = np.empty(len(values), dtype=bool)
    if len(values):
        starts[0] = True
        np.not_equal(values[1:], values[:-1] + step if step else values[:-1], out=starts[1:])
    return starts


def _root(vt, kind, home, node_of, taut, root: int) -> tuple[int | None, list[int] | None]:
    """The root node (None: a new last node), and the children of that extra
    product when the SDD's root covers less than the whole vtree (it is
    multiplied by the tautologies of the siblings on its path up)."""
    if kind[root] == T:
        return int(taut[vt.root]), None
    rh = int(home[root])
    if rh == vt.root:
        return int(node_of[root]), None
    sibs = vt.siblings(rh, vt.root)
    return None, [int(node_of[root]), *(int(taut[x]) for x in sibs)]
