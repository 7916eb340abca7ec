"""A smaller slot space for log-likelihoods and training: product rows share
one scratch region.

Layout layers hold one kind of partition each. In HCLT, PD, RAT-SPN and HMM
layouts a product node is read only by the sum partitions of the next layer:
its value is dead once those sums ran.
Log-likelihoods and EM statistics need the values and flows of inputs and
sums across the whole pass, but a product's only while its layer runs, so
the engine's fast path remaps every such product partition into a region of
`max over layers` rows that each product layer reuses (PyJuice keeps
products out of its node buffers the same way). The backward then
recomputes a product layer's values (one cheap product launch) before the
next layer's sum backward and parameter flows. Queries that return every node (flows, sampling, MPE) keep
the Layout's own slots.

`compact_remap(layout)` decides which product partitions may move and
returns the slot map; it is None when nothing would be saved or when a
block of rows that a kernel reads as one contiguous range would be split.
A product partition P of layer L moves only if
  * every reader of its rows is a sum partition of layer L + 1 (no product
    and no later layer reads them), and
  * in backward order every row of P is first written by a *storing* sum
    backward partition of layer L + 1 (plan.mark_first_writers), so no row
    of the reused region is ever read before that layer wrote it.
Rows nobody reads (a block-sparse sum that skips a child block: PD's
decomposition mixtures) move with their partition; their flows, which the
product backward reads, are zeroed just before it (`SlotMap.zero_rows`),
since no sum backward writes them and the region holds another layer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pccompiler import ir
from pccompiler.backends.triton.writers import block_rows, child_rows, first_writer_stores
from pccompiler.ir import pcir

MIN_SAVED_FRACTION = 0.05     # below this the second plan is not worth building


@dataclass
class SlotMap:
    remap: np.ndarray           # int64 [layout.num_slots] -> compact slot
    num_slots: int              # compact slot count
    scratch_start: int          # the shared region: [scratch_start, num_slots)
    scratch_layers: np.ndarray  # bool [num layers]: product layers whose partitions moved
    # layer -> compact slots of moved rows nobody reads (flows zeroed before
    # that layer's product backward)
    zero_rows: dict[int, np.ndarray] = field(default_factory=dict)


def _arr(table: dict, name: str, shape: tuple) -> np.ndarray:
    return np.asarray(table[name], dtype=np.int64).reshape(shape)


def _raw(table: dict, name: str, shape: tuple) -> np.ndarray:
    """The tensor as stored (int32 slots stay int32: no int64 copy of
    10^7 child slots for a remap that then declines)."""
    return np.asarray(table[name]).reshape(shape)


def compact_remap(layout: pcir.Layout, table: ir.TensorTable | None = None) -> SlotMap | None:
    """The SlotMap of `layout`'s compact plan, or None when it saves too
    little (module docstring). `table`: its tensors decoded already."""
    t = ir.tensor_table(layout) if table is None else table
    num_slots = int(layout.num_slots)
    parts = t.layer_parts(layout)
    layers = [layer for layer, *_ in parts]
    products: list[tuple[int, int, int]] = []          # (layer, start, n)
    blocks: list[tuple[np.ndarray, int]] = []           # block starts of one size > 1
    sum_children: list[np.ndarray] = []                 # children read by sums, and their layer
    sum_layers: list[int] = []
    product_children: list[np.ndarray] = []
    for li, (_, _, layer_products, layer_sums, layer_backwards) in enumerate(parts):
        for pp in layer_products:
            n, k = int(pp.num_nodes), int(pp.num_children)
            product_children.append(_raw(t, pp.child_slots, (n * k,)))
            products.append((li, int(pp.slot_start), n))
        for sp in layer_sums:
            nb, k = int(sp.num_blocks), int(sp.max_children)
            sum_children.append(_raw(t, sp.child_slots, (nb * k,)))
            sum_layers.append(li)
            if int(sp.block_size) > 1:
                blocks.append((_arr(t, sp.block_slots, (nb,)), int(sp.block_size)))
        for bp in layer_backwards:
            if int(bp.child_block_size) > 1:
                blocks.append((_arr(t, bp.cblock_slots, (int(bp.num_blocks),)),
                               int(bp.child_block_size)))
    if not products or not _may_save(products, sum_children, sum_layers, product_children,
                                     num_slots, len(layers)):
        return None
    # per-row arrays only past the early rejection (a logic circuit's layout stops above)
    min_sum_layer = np.full(num_slots, np.iinfo(np.int64).max, dtype=np.int64)
    max_sum_layer = np.full(num_slots, -1, dtype=np.int64)
    read_by_product = np.zeros(num_slots, dtype=bool)
    if sum_children:        # first and last sum layer reading each row: one pass for all
        cs = np.concatenate(sum_children).astype(np.int64)
        lis = np.repeat(sum_layers, [c.size for c in sum_children]).astype(np.int64)
        real = cs > 1
        np.minimum.at(min_sum_layer, cs[real], lis[real])
        np.maximum.at(max_sum_layer, cs[real], lis[real])
    cs = np.concatenate(product_children).astype(np.int64)
    read_by_product[cs[cs > 1]] = True
    unread = max_sum_layer < 0                       # and no product reads them (below)
    # Partitions whose readers allow the move; the first-writer test (a walk
    # of every backward writer) runs only if moving all of them could save
    # MIN_SAVED_FRACTION (a logic circuit's node layout: hardly any).
    candidates = _readable_moves(products, read_by_product, unread, min_sum_layer,
                                 max_sum_layer)
    if sum(c[2] for c in candidates) < MIN_SAVED_FRACTION * num_slots:
        return None                                  # saved <= the rows moved
    first_store_layer = _first_store_layers(t, layers, num_slots)
    moved = np.zeros(num_slots, dtype=bool)
    per_layer = np.zeros(len(layers), dtype=np.int64)
    chosen: list[tuple[int, int, int]] = []
    dead: dict[int, list[np.ndarray]] = {}
    for li, start, n, rows, live in candidates:
        if (first_store_layer[live] == li + 1).all():
            moved[rows] = True
            per_layer[li] += n
            chosen.append((li, start, n))
            if live.size < n:
                dead.setdefault(li, []).append(rows[unread[rows]])
    region = int(per_layer.max()) if chosen else 0
    saved = int(moved.sum()) - region
    if saved < MIN_SAVED_FRACTION * num_slots:
        return None
    remap = np.empty(num_slots, dtype=np.int64)
    kept = np.flatnonzero(~moved)
    remap[kept] = np.arange(kept.size)
    offset = np.zeros(len(layers), dtype=np.int64)
    for li, start, n in sorted(chosen, key=lambda c: (c[0], c[1])):
        remap[start:start + n] = kept.size + offset[li] + np.arange(n)
        offset[li] += n
    for starts, size in blocks:                      # every block stays one range
        got = remap[block_rows(starts, size).reshape(-1, size)]
        if not np.array_equal(got - got[:, :1], np.broadcast_to(np.arange(size), got.shape)):
            return None
    scratch_layers = np.zeros(len(layers), dtype=bool)
    scratch_layers[[c[0] for c in chosen]] = True
    zero_rows = {li: remap[np.concatenate(r)] for li, r in dead.items()}
    return SlotMap(remap, kept.size + region, kept.size, scratch_layers, zero_rows)


def _may_save(products: list[tuple[int, int, int]], sum_children: list[np.ndarray],
              sum_layers: list[int], product_children: list[np.ndarray], num_slots: int,
              num_layers: int) -> bool:
    """Whether the product partitions that pass the readers' rule
    (`readable_partitions`) hold MIN_SAVED_FRACTION of the slots: the rows
    any move could save. When they do not (a logic circuit's node layout:
    140 of 13M rows at 10^6 SDD nodes), the remap is None without the
    per-row layer arrays, _readable_moves and the first-writer walk."""
    ok = readable_partitions(products, sum_children, sum_layers, product_children,
                             num_slots, num_layers)
    rows = np.array([n for _, _, n in products], dtype=np.int64)
    return int(rows[ok].sum()) >= MIN_SAVED_FRACTION * num_slots


# Child slots (sums' and products' together) up to which readable_partitions
# counts the reads of all partitions in one bincount (`_read_counts_whole`):
# its two numpy calls per partition were most of a small logic circuit's
# remap (seq_fun: 87 partitions). Beyond it, partition by partition, with no
# concatenation of 10^7 child slots.
WHOLE_READS_MAX = 1 << 18


def readable_partitions(products: list[tuple[int, int, int]], sum_children: list[np.ndarray],
                        sum_layers: list[int], product_children: list[np.ndarray],
                        num_slots: int, num_layers: int) -> np.ndarray:
    """bool per product partition (layer, start, n): the readers' rule of
    _readable_moves (no product reads a row of it, some sum reads one, and
    only sums of the next layer do), from the reads of each partition
    counted per reading layer through a row -> partition map: one gather
    and one bincount per layer of child slots, no per-row arrays.
    `sum_children[i]`: the child slots (padding included) of a sum
    partition of layer `sum_layers[i]` (ascending); `product_children`:
    those of every product partition. Slots 0 and 1 (padding) belong to
    no partition. The map is one byte a row while the partitions are
    fewer than 255 (a logic circuit's: its 10^7 random reads stay in the
    cache more), and each partition's reads are counted as they are: no
    concatenation of 10^7 child slots per layer."""
    count = len(products)
    owner = np.full(num_slots, count, dtype=np.uint8 if count < 255 else np.int32)
    for p, (_, start, n) in enumerate(products):      # `count`: no product partition
        owner[start:start + n] = p
    owner[:2] = count
    layer_of = np.array([li for li, _, _ in products], dtype=np.int64)
    if sum(c.size for c in sum_children) + sum(c.size for c in product_children) <= WHOLE_READS_MAX:
        reads, by_products = _read_counts_whole(owner, count, sum_children, sum_layers,
                                                product_children, num_layers)
    else:
        reads = np.zeros((num_layers + 1, count + 1), dtype=np.int64)   # [reading layer, partition]
        for li, kids in zip(sum_layers, sum_children):
            reads[li] += np.bincount(owner[kids], minlength=count + 1)
        by_products = np.zeros(count + 1, dtype=np.int64)
        for kids in product_children:
            by_products += np.bincount(owner[kids], minlength=count + 1)
    by_next = reads[layer_of + 1, np.arange(count)]
    by_sums = reads[:, :count].sum(axis=0)
    return (by_products[:count] == 0) & (by_next > 0) & (by_sums == by_next)


def _read_counts_whole(owner: np.ndarray, count: int, sum_children: list[np.ndarray],
                       sum_layers: list[int], product_children: list[np.ndarray], num_layers: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """readable_partitions' read counts, [reading layer, partition] by the
    sums and [partition] by the products (partition `count`: none), from
    one bincount of (layer, owner) over every sum's children and one over
    every product's."""
    if sum_children:
        kids = np.concatenate(sum_children)
        key = np.repeat(np.asarray(sum_layers, dtype=np.int64) * (count + 1),
                        [c.size for c in sum_children])
        key += owner[kids]
        reads = np.bincount(key, minlength=(num_layers + 1) * (count + 1))
    else:
        reads = np.zeros((num_layers + 1) * (count + 1), dtype=np.int64)
    reads = reads.reshape(num_layers + 1, count + 1)
    kids = np.concatenate(product_children) if product_children else np.zeros(0, dtype=np.int64)
    by_products = np.bincount(owner[kids], minlength=count + 1)
    return reads, by_products


def _readable_moves(products: list[tuple[int, int, int]], read_by_product: np.ndarray,
                    unread: np.ndarray, min_sum_layer: np.ndarray, max_sum_layer: np.ndarray
                    ) -> list[tuple[int, int, int, np.ndarray, np.ndarray]]:
    """(layer, start, n, rows, live rows) of each product partition that no
    product reads, that some sum reads, and whose read rows only the next
    layer's sums read: the readers' rule of the module docstring, tested
    for every partition at once over their concatenated rows (a logic
    circuit's node layout has a partition per layer, and a numpy call per
    partition and test cost more than the whole test)."""
    li, start, n = (np.array(col, dtype=np.int64) for col in zip(*products))
    first = np.cumsum(n) - n                            # each partition's first row below
    rows = np.repeat(start - first, n) + np.arange(int(n.sum()))
    nxt = np.repeat(li + 1, n)
    live = ~unread[rows]
    bad = read_by_product[rows] | (live & ((min_sum_layer[rows] != nxt)
                                           | (max_sum_layer[rows] != nxt)))
    bounds = np.append(first, rows.size)
    count = lambda flags: np.diff(np.concatenate([[0], np.cumsum(flags)])[bounds])  # noqa: E731
    ok = (count(bad) == 0) & (count(live) > 0)
    out = []
    for p in np.flatnonzero(ok):
        r = rows[first[p]:first[p] + n[p]]
        out.append((int(li[p]), int(start[p]), int(n[p]), r, r[~unread[r]]))
    return out


def _first_store_layers(t: dict, layers: list, num_slots: int) -> np.ndarray:
    """Per slot, the layer of the storing sum backward partition that writes
    it first in backward order (writers.first_writer_stores, the rule of
    plan.mark_first_writers), or -1 when its first writer adds or is a
    product partition."""
    writers = []
    for layer in layers:
        sums = [(block_rows(_arr(t, bp.cblock_slots, (int(bp.num_blocks),)),
                            int(bp.child_block_size)), True)
                for bp in layer.sum_backward_partitions]
        prods = [(child_rows(_arr(t, pp.child_slots, (int(pp.num_nodes) * int(pp.num_children),))),
                  False) for pp in layer.product_partitions]
        writers.append(sums + prods)
    first = np.full(num_slots, -1, dtype=np.int64)
    for li, (layer_writers, flags) in enumerate(zip(writers, first_writer_stores(writers,
                                                                                  num_slots))):
        for (rows, _), store in zip(layer_writers, flags):
            if store:
                first[rows] = li
    return first
