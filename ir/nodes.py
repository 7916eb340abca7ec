"""The node-level form of a Model (pcir.NodeCircuit) as numpy arrays.

Logic circuits (SDD) have no group structure: every node has its own
fan-in, so one group per scope gives ~7 groups per 100 nodes and every pass
pays Python per group. The node form keeps the whole circuit in a handful
of CSR arrays instead; `NodeArrays` is their numpy view, `set_nodes` writes
them into a Model, `node_arrays` reads them back, `node_structure` feeds
ir.structure_hash and `node_counts` the `pcc stat` / `pcc dump` totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pccompiler.ir import pcir_pb2 as pcir
from pccompiler.ir.tensors import add_tensor, to_numpy

# NodeCircuit field -> NodeArrays attribute, in the order they are written.
TENSOR_FIELDS = ("kind", "child_offsets", "child_ids", "sum_weights", "input_vars",
                 "input_params", "variable_order", "scope_lo", "scope_hi")
INPUT, PRODUCT, SUM = pcir.INPUT, pcir.PRODUCT, pcir.SUM
KIND_NAMES = {INPUT: "input", PRODUCT: "product", SUM: "sum"}


@dataclass
class NodeArrays:
    """A NodeCircuit's arrays (see ir/pcir.proto for their meaning)."""
    kind: np.ndarray            # uint8 [N]
    child_offsets: np.ndarray   # int64 [N + 1]
    child_ids: np.ndarray       # int32 / int64 [E]
    sum_weights: np.ndarray     # float [S]
    input_vars: np.ndarray      # int [I]
    input_params: np.ndarray    # float [I, K]
    variable_order: np.ndarray  # int [V]
    scope_lo: np.ndarray        # int [N]
    scope_hi: np.ndarray        # int [N]
    roots: np.ndarray           # int64 [R]

    @property
    def num_nodes(self) -> int:
        return len(self.kind)

    def fan_in(self) -> np.ndarray:
        """int64 [N], read-only: made once (every pass asks for it, and a
        diff of 10^7 offsets costs 0.1-0.4 s; the arrays are not changed in
        place, and a new child_offsets array is noticed)."""
        cached = self.__dict__.get("_fan")
        if cached is not None and cached[0] is self.child_offsets:
            return cached[1]
        fan = np.diff(self.child_offsets)
        fan.flags.writeable = False
        self.__dict__["_fan"] = (self.child_offsets, fan)
        return fan

    def parents(self) -> np.ndarray:
        """The parent node of every edge (int64 [E])."""
        return np.repeat(np.arange(self.num_nodes), self.fan_in())


def is_node_model(model: pcir.Model) -> bool:
    """Whether `model` is in the node form (has a NodeCircuit)."""
    return model.HasField("nodes")


def index_dtype(n: int):
    """int32 for ids below 2^31 (half the bytes), else int64."""
    return np.int32 if n < 2 ** 31 else np.int64


def set_nodes(model: pcir.Model, arrays: NodeArrays, prefix: str = "nodes.",
              release: bool = False, later: dict | None = None) -> None:
    """Write `arrays` into `model` as its NodeCircuit (tensors named prefix + field).
    release=True: each array is dropped from `arrays` once its tensor (a
    copy) is written, so a caller holding no other reference to them never
    holds both copies of the large ones; `later`: field -> a function that
    makes that array when it is written (None in `arrays`)."""
    nc = model.nodes
    nc.Clear()
    nc.num_nodes = arrays.num_nodes
    for name in TENSOR_FIELDS:
        array = getattr(arrays, name)
        if array is None and later and name in later:
            array = later[name]()
        add_tensor(model.tensors, np.ascontiguousarray(array), prefix + name)
        setattr(nc, name, prefix + name)
        if release:
            del array
            setattr(arrays, name, None)
    nc.roots.extend(int(r) for r in arrays.roots)


def concat_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The concatenated ranges starts[i] .. starts[i] + lens[i] - 1 (int64):
    the entries of CSR rows, used by the importers and the node passes."""
    lens = lens.astype(np.int64, copy=False)
    return np.repeat(starts.astype(np.int64) - (np.cumsum(lens) - lens), lens) + \
        np.arange(int(lens.sum()), dtype=np.int64)


# Entries per step of a chunked whole-array pass: its temporaries (4-8 MB)
# are reused from the heap and stay in cache, where one pass over the whole
# array allocates fresh 100-300 MB temporaries for 10^7 entries, paid in
# page faults (half the import time of a 10^6-node SDD on a small VM).
CHUNK = 1 << 20


def chunk_bounds(n: int, step: int | None = None) -> list[tuple[int, int]]:
    """[(start, end)] cutting range(n) into pieces of `step` (CHUNK)."""
    step = step or CHUNK
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def row_chunks(ends: np.ndarray, step: int | None = None) -> list[tuple[int, int]]:
    """[(r0, r1)]: rows cut into runs of about `step` (CHUNK) entries, for
    rows whose entries end at `ends` (the cumulative lengths, ends[-1] =
    total); a row longer than `step` is a run of its own."""
    step = step or CHUNK
    n = len(ends)
    if not n:
        return []
    if int(ends[-1]) <= step:
        return [(0, n)]
    cuts = np.unique(np.searchsorted(ends, np.arange(step, int(ends[-1]), step), side="right"))
    bounds = [0, *(int(c) for c in cuts if 0 < c < n), n]
    return list(zip(bounds[:-1], bounds[1:]))


def gather_ranges(src: np.ndarray, starts: np.ndarray, lens: np.ndarray,
                  out: np.ndarray | None = None, dest: np.ndarray | None = None,
                  through: np.ndarray | None = None, stride: int = 1) -> np.ndarray:
    """src[concat_ranges(starts, lens)] (into `out` when given), or with
    `dest` (row starts in `out`) the scatter out[concat_ranges(dest,
    lens)] = that; with `through`, through[...] of those values (one fused
    pass); with `stride`, row i reads src[starts[i] + stride * j] (j <
    lens[i]); chunk by chunk of rows (row_chunks), so no index array of the
    whole length is made."""
    lens = lens.astype(np.int64, copy=False)
    ends = np.cumsum(lens)
    total = int(ends[-1]) if len(ends) else 0
    if out is None:
        out = np.empty(total, dtype=(src if through is None else through).dtype)
    if not total:
        return out
    cuts = [(r0, r1, int(ends[r0 - 1]) if r0 else 0, int(ends[r1 - 1]))
            for r0, r1 in row_chunks(ends)]
    steps = np.arange(max(e1 - e0 for _, _, e0, e1 in cuts), dtype=np.int64)
    for r0, r1, e0, e1 in cuts:
        ln = lens[r0:r1]
        first = ends[r0:r1] - ln - e0                 # each row's first entry, chunk-local
        within = steps[:e1 - e0]
        idx = np.repeat(starts[r0:r1] - stride * first, ln)
        idx += within if stride == 1 else stride * within
        if through is not None:
            idx = src[idx]
        table = src if through is None else through
        if dest is None:
            np.take(table, idx, out=out[e0:e1])
        else:
            pos = np.repeat(dest[r0:r1] - first, ln)
            pos += within
            out[pos] = table[idx]
    return out


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable") for non-negative integer keys (int64),
    faster. argsort's stable kind is a merge sort for 32/64-bit keys, and
    on the shared box even np.sort of int64 values costs ~50 ns a value.
    Keys of up to 24 bits take radix_argsort (two linear passes, about
    twice the speed of a sort at 10^5-10^7 keys); wider keys the packed
    sort of sort_low_by_key (the indices sorted by (key, index), exactly
    the stable order); keys too wide for packing radix_argsort again up to
    48 bits and RADIX_WIDE_MAX keys (three passes), else argsort."""
    order = stable_order(keys)
    return np.argsort(keys, kind="stable") if order is None else order


def stable_order(keys: np.ndarray) -> np.ndarray | None:
    """stable_argsort's fast ways, or None when none fits (keys negative,
    or too wide to pack with their positions and wider than 48 bits or
    more than RADIX_WIDE_MAX): the
    caller then argsorts (unique_sorted, which needs no stable order, by
    the unstable kind)."""
    n = len(keys)
    if not n:
        return np.zeros(0, dtype=np.int64)
    if keys.dtype.kind not in "iu" or int(keys.min()) < 0:
        return None
    bits = int(keys.max()).bit_length()
    if bits <= 16:
        return np.argsort(keys.astype(np.uint16), kind="stable").astype(np.int64, copy=False)
    if bits <= RADIX_BITS:
        return radix_argsort(keys, bits)
    order = sort_low_by_key(keys, np.arange(n, dtype=np.int64), n - 1)
    if order is None and bits <= 48 and n <= RADIX_WIDE_MAX:
        return radix_argsort(keys, bits)
    return order


RADIX_BITS = 24     # widest keys that stable_argsort radix-sorts before packing
# Most keys for the three-pass radix of unpackable keys: beyond it the
# passes' random gathers fall out of cache, and on the element keys of a
# 10^6-node SDD (12M keys of 42 bits) numpy's argsort was faster (1.1 s
# against 1.5 s); at 0.5M keys of 46 bits the radix takes 23 ms, argsort 32.
RADIX_WIDE_MAX = 1 << 22


def radix_argsort(keys: np.ndarray, bits: int) -> np.ndarray:
    """int64: the stable order of non-negative integer keys below 2^bits,
    least significant digit first: each digit is one of the keys' 16-bit
    (or, for a last digit of <= 8 bits, 8-bit) words, read through the
    order so far and ordered by numpy's stable argsort of uint16 / uint8
    values, which is a counting sort (linear). No key is copied: the words
    are strided views of the int64 keys."""
    n = len(keys)
    keys = np.ascontiguousarray(keys, dtype="<i8")
    words16 = keys.view("<u2").reshape(n, 4)
    words8 = keys.view(np.uint8).reshape(n, 8)
    order = None
    for low in range(0, max(bits, 1), 16):
        digit = words8[:, low // 8] if bits - low <= 8 else words16[:, low // 16]
        step = np.argsort(digit if order is None else digit[order], kind="stable")
        order = step if order is None else order[step]
    return order.astype(np.int64, copy=False)


def sort_low_by_key(keys: np.ndarray, low: np.ndarray, low_max: int) -> np.ndarray | None:
    """int64: `low` (non-negative ints <= low_max) ordered by (key, low),
    by one np.sort of each key packed with its low value into one int64
    (key high, low value in the low bits): no argsort and no gather through
    a permutation. None when a key is negative or key and low value do not
    fit 62 bits together (the caller falls back to an argsort)."""
    shift = max(int(low_max).bit_length(), 1)
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    if int(keys.min()) < 0 or int(keys.max()).bit_length() + shift > 62:
        return None
    packed = (keys.astype(np.int64) << shift) | low
    packed.sort()
    packed &= (1 << shift) - 1
    return packed


def node_arrays(model: pcir.Model, table=None) -> NodeArrays:
    """The NodeCircuit's arrays (`table`: name -> numpy, default decoded from
    the Model). No checks: run ir.check first on untrusted input."""
    nc = model.nodes
    if table is None:
        wanted = {getattr(nc, name) for name in TENSOR_FIELDS}
        table = {t.name: to_numpy(t) for t in model.tensors if t.name in wanted}
    return NodeArrays(*(np.asarray(table[getattr(nc, name)]) for name in TENSOR_FIELDS),
                      roots=np.asarray(nc.roots, dtype=np.int64))


def node_structure(model: pcir.Model, tensors: dict, arrays: NodeArrays | None = None
                   ) -> tuple[list[int], list[np.ndarray]]:
    """(ints, blobs) of the structure for ir.structure_hash: counts and the
    structural arrays (kinds, CSR, input variables, order, scopes) as
    contiguous little-endian int32 (int64 where a value needs it) arrays,
    hashed through the buffer protocol (no bytes copies of the 10^7-entry
    arrays); weights and input parameters are left out. `arrays`: the
    Model's NodeArrays, already decoded (else read from `tensors`)."""
    nc = model.nodes
    ints = [-2, int(nc.num_nodes), len(nc.roots), *nc.roots]
    blobs = []
    for name in ("kind", "child_offsets", "child_ids", "input_vars", "variable_order",
                 "scope_lo", "scope_hi"):
        proto = tensors.get(getattr(nc, name))
        if proto is None:
            blob = np.zeros(0, dtype="<i4")
        else:
            blob = _canonical(to_numpy(proto) if arrays is None else getattr(arrays, name))
        ints.append(blob.nbytes)
        blobs.append(blob)
    return ints, blobs


def _canonical(array: np.ndarray) -> np.ndarray:
    """An integer array as a C-contiguous array of a dtype independent of
    its stored one: little-endian int32 when every value fits (the usual
    case, the stored array itself when stored so), else int64."""
    if array.dtype == np.dtype("<i4"):
        return np.ascontiguousarray(array)
    if array.dtype.itemsize < 4 or not len(array) or (
            array.min() >= -2 ** 31 and array.max() < 2 ** 31):
        return np.ascontiguousarray(array, dtype="<i4")
    return np.ascontiguousarray(array, dtype="<i8")


def node_counts(model: pcir.Model) -> dict[str, int]:
    """Nodes per kind and edges, from the tensors' dims and the kind array
    (what ir.edge_counts reports for a node-form Model)."""
    nc = model.nodes
    protos = {t.name: t for t in model.tensors}
    kind = protos.get(nc.kind)
    kinds = to_numpy(kind) if kind is not None else np.zeros(0, dtype=np.uint8)
    per = np.bincount(kinds.astype(np.int64), minlength=4) if len(kinds) else np.zeros(4, int)
    dims = {name: list(protos[getattr(nc, name)].dims) if getattr(nc, name) in protos else [0]
            for name in ("child_ids", "sum_weights", "input_params")}
    edges = int(dims["child_ids"][0])
    sum_edges = int(dims["sum_weights"][0])
    return dict(groups=0, nodes=int(nc.num_nodes), input_nodes=int(per[INPUT]),
                product_nodes=int(per[PRODUCT]), sum_nodes=int(per[SUM]),
                sum_edges=sum_edges, product_edges=edges - sum_edges, edges=edges,
                sum_params=sum_edges, input_params=int(np.prod(dims["input_params"])))
