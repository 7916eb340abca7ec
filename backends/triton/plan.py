"""The Triton plan: a Layout's partitions as device tensors, decoded once.

Kernels want narrow indices (int32 slots and counts, int64 parameter
offsets, so a slot times the batch stride and a parameter offset past 2^31
stay exact after the in-kernel int64 cast) and a few facts the Layout does not
spell out, derived here with vectorized numpy:

* `atomic` per product partition: some child slot (other than the padding
  slot 1) has two parents inside the partition, so the backward must add
  flows atomically;
* `atomic` per sum partition: parameter ranges shared with another block of
  the layout (ties), so parameter flows add atomically;
* `owner_blocks` / `owner_rows`: the one block (input row) per tie class that
  the EM update rewrites.

Every part dataclass can also be built straight from numpy arrays (the tests
do that for random partitions that no pass would produce).

The parts are not backends/common/layout_index.py's InputPart / ProductPart /
SumPart, hence their own names (`*KernelPart`): those hold int64 tensors
shaped for torch indexing (a [nb, K, bs] weight index per sum partition),
these the compact int32 slot / int64 parameter-start arrays the kernels
take, plus what only the kernel launches need (atomics, owners, program
groups, first-writer and log-ratio flags, autotuned options). Field names
follow ir/pcir.proto's partition messages wherever a field holds what a
proto field holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from pccompiler import ir
from pccompiler.backends.common.block_runs import equal_runs, variable_runs
from pccompiler.backends.common.upload import upload_fields
from pccompiler.backends.triton import fusion as fusion_rules  # FUSE_BACKWARD read per build
from pccompiler.backends.triton.fusion import plan_fusion
from pccompiler.backends.triton.scratch import SlotMap
from pccompiler.backends.triton.writer_marks import mark_plain_writers, mark_ratio_by_writer
from pccompiler.backends.triton.writers import block_rows, child_rows, first_writer_stores
from pccompiler.ir import pcir

DIST_CODES = {pcir.CATEGORICAL_DIST: 0, pcir.BERNOULLI_DIST: 1, pcir.GAUSSIAN_DIST: 2}


_HOST = torch.device("cpu")


def _on(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """t (a fresh host tensor) on `device`; build_plan builds on the host,
    where a `.to` call is pure overhead (hundreds of parts)."""
    return t if device is _HOST else t.to(device)


def _i32(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """int32 copy of `a`, or int64 when some value does not fit."""
    a = np.asarray(a)
    if a.dtype != np.int32:             # int32 input fits by construction
        a = np.asarray(a, dtype=np.int64)
        if a.size and (a.max() >= 2**31 or a.min() < -2**31):
            return _on(torch.from_numpy(a.copy()), device)
    return _on(torch.from_numpy(a.astype(np.int32)), device)


def _i64(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return _on(torch.from_numpy(np.array(a, dtype=np.int64)), device)


@dataclass
class InputKernelPart:
    """An InputPartition as the io kernels read it."""
    dist: int                      # 0 categorical, 1 Bernoulli, 2 Gaussian (io_kernels)
    slot_start: int
    num_nodes: int
    params_per_node: int
    node_vars: torch.Tensor        # int32 [n]
    node_param_starts: torch.Tensor    # int64 [n]
    atomic: bool                   # parameter rows shared (ties)
    owner_param_starts: torch.Tensor   # int64 [m]: rows this partition updates in EM
    # Categorical only: node tiles (start, count, variable) that never cross a
    # change of variable, for the one-hot tensor-core statistics kernel; None
    # when runs of one variable are too short (< 16 nodes on average).
    var_tiles: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None


@dataclass
class ProductKernelPart:
    """A ProductPartition (or adjacent ones merged, `merge_product_runs`)."""
    slot_start: int
    num_nodes: int
    num_children: int
    child_slots: torch.Tensor      # int32 [n, K], padding slot 1
    atomic: bool
    store: bool = False            # first backward writer of all its child rows
    ratio_out: bool = False        # some child rows take log ratios (`mark_ratio_rows`)
    fused: bool = False            # folded into its reading sums: no forward (fusion.py)
    fused_bwd: bool = False        # and no backward: its writers pass flows to its children


@dataclass
class SumKernelPart:
    """A SumPartition as the forward, parameter-flow and EM kernels read it."""
    block_size: int
    num_blocks: int
    max_children: int
    block_slots: torch.Tensor      # int32 [nb]
    block_num_children: torch.Tensor   # int32 [nb]
    child_slots: torch.Tensor      # int32 [nb, K], padding slot 0
    block_param_starts: torch.Tensor   # int64 [nb]
    atomic: bool
    owner_blocks: torch.Tensor     # int32 [m]
    options: dict[str, str] = field(default_factory=dict)
    ratio_by_writer: bool = False  # its product writer stores the log ratios (`mark_ratio_rows`)
    group: int = 1                 # aligned runs of blocks sharing children (`shared_run`)
    # Row tiles (kernel option `tile_rows`): the mean fan-in of the runs, which
    # sizes their child chunks (launch.tile_fan_in); 0 elsewhere (max_children).
    mean_children: float = 0.0
    # Fused plans (fusion.py): int32 [nb, K, A] grandchild slots read in place
    # of child_slots' values, A = fused_arity; None / 0 for plain children.
    grand_slots: torch.Tensor | None = None
    fused_arity: int = 0
    # Runs of unequal length (`run_table`): int32 [runs + 1] first block of
    # each run, the last entry num_blocks; group is then the longest run's
    # blocks rounded up to a power of two (a bound: each program masks the
    # rows past its own run). None: aligned runs of `group` blocks.
    runs: torch.Tensor | None = None
    # Its node flows through the tile (`is_tile_part`) store instead of adding
    # atomically: no child row in two of its runs, none written before it.
    tile_store: bool = False

    @property
    def rows(self) -> int:
        """Rows one forward / parameter-flow program group covers."""
        return self.group * self.block_size

    @property
    def num_runs(self) -> int:
        """Program groups of the forward / parameter-flow / tile-flow grids."""
        return self.runs.numel() - 1 if self.runs is not None else self.num_blocks // self.group

    def run_kwargs(self) -> dict:
        """The kernels' keyword arguments for unequal runs ({} for aligned ones)."""
        return {} if self.runs is None else dict(runs_ptr=self.runs, RUNS=True)


@dataclass
class SumBackwardKernelPart:
    """A SumBackwardPartition as the node-flow kernel reads it; runs of child
    blocks may read their parents' union (`parent_union`): then a
    `parent_param_starts` entry of -1 marks a parent the block lacks."""
    child_block_size: int
    parent_block_size: int
    num_blocks: int
    max_parents: int
    cblock_slots: torch.Tensor     # int32 [nb]
    cblock_num_parents: torch.Tensor   # int32 [nb]
    parent_slots: torch.Tensor     # int32 [nb, P], padding slot 0
    parent_param_starts: torch.Tensor  # int64 [nb, P]
    options: dict[str, str] = field(default_factory=dict)
    store: bool = False            # first backward writer of all its child rows
    group: int = 1                 # aligned runs of child blocks (`parent_union`)
    # Fused plans: int32 [nb * child_block_size, A] grandchild slots of the
    # child rows (their values are not written, fusion.py); None / 0 else.
    child_grand: torch.Tensor | None = None
    fused_arity: int = 0
    # Backward fusion: node flows go to child_out's rows, int32
    # [nb * child_block_size, A_out] (a folded product's flow to its
    # children, a plain row to itself; fusion.Fusion.out_of); atomic_out
    # where two rows of the part share one, ratio_out where some take log
    # ratios (`mark_ratio_rows`).
    child_out: torch.Tensor | None = None
    out_arity: int = 0
    atomic_out: bool = False
    ratio_out: bool = False

    @property
    def fused_bwd(self) -> bool:
        return self.out_arity > 0

    @property
    def rows(self) -> int:
        """Child rows one node-flow program group covers."""
        return self.group * self.child_block_size


@dataclass
class LayerPlan:
    kind: int
    inputs: list[InputKernelPart] = field(default_factory=list)
    products: list[ProductKernelPart] = field(default_factory=list)
    sums: list[SumKernelPart] = field(default_factory=list)
    sum_backwards: list[SumBackwardKernelPart] = field(default_factory=list)
    scratch: bool = False          # products in the shared region (scratch.py): recompute
    zero_flow_rows: torch.Tensor | None = None   # unread scratch rows: zero before product bwd
    # Row-tiled sum partitions (members of `sums`) whose node flows run
    # through their forward tiles (tile_flows.py, `is_tile_part`) instead of
    # sum_backwards, after it; they add atomically into child rows, of which
    # tile_zero_rows (no earlier writer in the backward) are zeroed first.
    tile_flows: list[SumKernelPart] = field(default_factory=list)
    tile_zero_rows: torch.Tensor | None = None


@dataclass
class TritonPlan:
    num_slots: int
    root_slot: int
    layers: list[LayerPlan]
    # Flow rows the backward must zero first: every row except the root and
    # the rows whose first writer stores (see `mark_first_writers`); with
    # zero_all a plain memset of the buffer is cheaper than an indexed fill.
    zero_rows: torch.Tensor | None = None
    zero_all: bool = True
    # All forward sum partitions of one (block size, fan-in), concatenated:
    # parameter flows (run once after the whole backward, when every flow is
    # known) and EM need no layer order, so one launch serves them all.
    merged_sums: list[SumKernelPart] = field(default_factory=list)
    # Compact plans (scratch.py): rows [scratch_start, num_slots) are reused by
    # every product layer, so parameter flows run per layer, right after the
    # layer's products were recomputed; None: the Layout's own slots.
    scratch_start: int | None = None
    # uint8 [num_slots]: sum rows whose one writer, a storing product
    # partition, writes log(flow) - value in training (`mark_ratio_rows`).
    ratio_rows: torch.Tensor | None = None


MERGE_MAX_CHILDREN = 16   # product partitions merge only up to this padded fan-in


def merge_product_runs(parts: list[tuple[int, np.ndarray]]) -> list[tuple[int, np.ndarray]]:
    """Merge a layer's product partitions whose slot ranges are adjacent into
    one launch: their [n, K] child slots are padded to the largest K with
    slot 1 (value 0, no flow). A deep circuit's layer often holds a few
    partitions that differ only in fan-in (HCLT: 2, 4, 5 children), and every
    launch of a small layer costs a few microseconds."""
    out: list[tuple[int, np.ndarray]] = []
    for start, cs in sorted(parts, key=lambda p: p[0]):
        if out:
            prev_start, prev = out[-1]
            k = max(prev.shape[1], cs.shape[1])
            if prev_start + prev.shape[0] == start and k <= MERGE_MAX_CHILDREN:
                pad = lambda a: np.pad(a, ((0, 0), (0, k - a.shape[1])),  # noqa: E731
                                       constant_values=1)
                out[-1] = (prev_start, np.concatenate([pad(prev), pad(cs)]))
                continue
        out.append((start, cs))
    return out


def _has_duplicates(a: np.ndarray) -> bool:
    """Whether some value occurs twice: fewer distinct values than entries,
    marked in a bool array over the value range when it is narrow (slots
    of one partition usually are; a byte per value, where a bincount's
    int64 counts of 10^7 slots missed the cache at half the speed), else a
    sort (np.unique's hashing costs ~0.1 s per compile on a big HCLT)."""
    if a.size < 2:
        return False
    lo, hi = int(a.min()), int(a.max())
    if hi - lo < 4 * a.size + 1024:
        seen = np.zeros(hi - lo + 1, dtype=bool)
        seen[a - lo if lo else a] = True
        return int(np.count_nonzero(seen)) < a.size
    s = np.sort(a, axis=None)
    return bool((s[1:] == s[:-1]).any())


def product_part(slot_start: int, child_slots: np.ndarray, device: torch.device
                 ) -> ProductKernelPart:
    """A ProductKernelPart from its [n, K] child slots; detects shared
    children (in the slots' own dtype: an int64 copy of 10^7 int32 slots
    cost more than the test)."""
    cs = np.asarray(child_slots)
    n, k = cs.shape
    atomic = _has_duplicates(cs[cs != 1])
    return ProductKernelPart(int(slot_start), n, k, _i32(child_slots, device), atomic)


GROUP_MAX_ROWS = 128   # a program group of blocks that share their children spans at most this


def shared_run(lists: np.ndarray, counts: np.ndarray, block_size: int,
               max_rows: int | None = None) -> int:
    """The largest power-of-two run G of consecutive, aligned blocks with the
    same children (`lists` rows, padded, and `counts`), G * block_size <=
    max_rows: the kernels then treat each run as one block of G * block_size
    rows whose parameters start per block. A dense layer declared as 32-row
    blocks (a block-sparse sum keeping every block) so reads each child tile
    once per 128 rows instead of once per 32, without moving a parameter.
    max_rows None: GROUP_MAX_ROWS (read at call time; 1 turns runs off).
    The torch engine's layout index merges the same runs (common/block_runs)."""
    return equal_runs(lists, counts, block_size,
                      GROUP_MAX_ROWS if max_rows is None else max_rows)


VARIABLE_RUNS = True    # False: aligned runs only (A/B runs; bench/step_model.py 'before')
RUN_GAIN = 2.0          # unequal runs replace aligned ones when their mean is this much longer


def run_table(lists: np.ndarray, counts: np.ndarray, block_size: int, group: int,
              same: np.ndarray | None = None) -> tuple[int, np.ndarray | None]:
    """(group, runs) of a sum part: unequal runs of blocks with the same
    children (common/block_runs.variable_runs, up to GROUP_MAX_ROWS rows)
    where their mean length beats the aligned runs of `group` blocks by
    RUN_GAIN, with group the longest run rounded up to a power of two;
    else (group, None). A pruned group stored DENSE at an odd size has
    one-row blocks that no aligned run takes (its rows number 126, say):
    one run of all its rows reads each child once instead of once per row,
    and its node flows can go through the tile (`is_tile_part`). `same`:
    `equal_neighbours(lists, counts)`, when the caller has it."""
    nb = lists.shape[0]
    if not VARIABLE_RUNS or nb < 2:
        return group, None
    # variable_runs yields at least one run per block unlike its predecessor:
    # when those alone are too many, skip it (a logic circuit's parts, mostly)
    if same is None:
        same = equal_neighbours(lists, counts)
    if nb < RUN_GAIN * group * (nb - int(same.sum())):
        return group, None
    starts = variable_runs(lists, counts, block_size, GROUP_MAX_ROWS)
    runs = starts.size - 1
    if lists.shape[0] / runs < RUN_GAIN * group:
        return group, None
    longest = int(np.diff(starts).max())
    return 1 << (longest - 1).bit_length(), starts


def sum_part(block_size: int, block_slots: np.ndarray, block_num_children: np.ndarray,
             child_slots: np.ndarray, block_param_starts: np.ndarray, device: torch.device,
             atomic: bool = False, owner_mask: np.ndarray | None = None,
             options: dict[str, str] | None = None,
             grand_slots: np.ndarray | None = None) -> SumKernelPart:
    """A SumKernelPart whose runs of blocks with equal children (`shared_run`)
    the kernels walk as one block. grand_slots [nb, K, A]: the children's
    values are read as sums of these rows (fusion.py)."""
    nb, k = np.shape(child_slots)
    num_children = np.asarray(block_num_children, dtype=np.int64)
    # int32 where the input is (_i32 then skips its range check)
    owners = np.arange(nb, dtype=np.int32) if owner_mask is None else \
        np.flatnonzero(owner_mask).astype(np.int32)
    mean = float(num_children.mean()) if nb and "tile_rows" in (options or {}) else 0.0
    same = equal_neighbours(child_slots, num_children)
    if nb == 1 or not same.any():
        # no two consecutive blocks share their children (a logic circuit's
        # sum part: distinct nodes), so no run exists, aligned or not:
        # shared_run answers 1 and run_table (1, None) without searching
        group, runs = 1, None
    else:
        cs = np.asarray(child_slots, dtype=np.int64)
        group, runs = run_table(cs, num_children, int(block_size),
                                shared_run(cs, num_children, int(block_size)), same)
    return SumKernelPart(int(block_size), nb, k, _i32(block_slots, device),
                         _i32(block_num_children, device), _i32(child_slots, device),
                         _i64(block_param_starts, device), bool(atomic), _i32(owners, device),
                         dict(options or {}), group=group, mean_children=mean,
                         grand_slots=None if grand_slots is None else _i32(grand_slots, device),
                         fused_arity=0 if grand_slots is None else int(grand_slots.shape[2]),
                         runs=None if runs is None else _i32(runs, device))


def equal_neighbours(lists: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """bool [nb - 1]: block i + 1 has block i's children (`lists` rows, in
    any integer dtype, and `counts`)."""
    return (lists[1:] == lists[:-1]).all(axis=1) & (counts[1:] == counts[:-1])


UNION_MAX_READS = 0.7    # a run of child blocks must read at most this share of the parent tiles
# Runs whose blocks lack some of the union's parents (zero-weight tiles):
# off, because the masked dots cost more than the parent reads they save
# (block-sparse race cases, bench/results/race-h100-status.md). Runs of
# equal parent sets are always taken.
UNIONS_WITH_GAPS = False


def parent_union(parent_slots: np.ndarray, parent_param_starts: np.ndarray,
                 num_parents: np.ndarray, block_size: int, max_rows: int | None = None
                 ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of child blocks for the node-flow kernel: (G, slots, starts, counts).

    A node-flow program reads a [parent rows, batch] tile for every parent
    block of its child block; in a block-sparse layer of 32-row blocks each
    parent tile is read by every child block under it. Walking an aligned
    run of G child blocks as one block of G * block_size rows over the union
    of their parent lists reads each parent tile once per run, at the cost
    of multiplying zeros where a block lacks a parent (its start is -1).
    Picks the G (a power of two, G * block_size <= max_rows) that reads the
    fewest parent tiles, if that is at most UNION_MAX_READS of the separate
    reads; else (1, the inputs). Runs of identical lists read 1/G. Unions
    are exact here (node flows are linear; a block's missing parents add
    nothing), unlike the forward's log-space sums, whose shared per-column
    maximum could underflow a row whose own children are far below it: the
    forward and parameter flows only take runs of identical lists (`shared_run`).

    Without UNIONS_WITH_GAPS (the default) only runs of equal parent sets
    count, which one row sort decides (`_equal_set_runs`); the general
    search (`_parent_union_search`) runs when gaps are allowed."""
    psl = np.asarray(parent_slots, dtype=np.int64)
    pps = np.asarray(parent_param_starts, dtype=np.int64)
    npar = np.asarray(num_parents, dtype=np.int64)
    max_rows = GROUP_MAX_ROWS if max_rows is None else max_rows
    nb = psl.shape[0]
    plain = (1, psl, pps, npar)
    if int(npar.sum()) == 0 or 2 * block_size > max_rows or nb < 2:
        return plain
    if UNIONS_WITH_GAPS:
        return _parent_union_search(psl, pps, npar, block_size, max_rows, True)
    return _equal_set_runs(psl, pps, npar, block_size, max_rows)


def _equal_set_runs(psl: np.ndarray, pps: np.ndarray, npar: np.ndarray, block_size: int,
                    max_rows: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """parent_union without gaps, by one sort of each row's parents: G
    qualifies when every aligned run of G blocks lists one parent set, so if
    G does not, no larger G does (its runs hold G's runs); the union of a
    run is then any member's sorted list and reads sum(npar[::G]) tiles, the
    fewest at the largest qualifying G. Same answer as
    `_parent_union_search(.., gaps=False)`, without its hash of every pair
    per candidate G (0.5 s of a 110k-node SDD's plan)."""
    nb, p = psl.shape
    total = int(npar.sum())
    plain = (1, psl, pps, npar)
    # G = 2 needs equal pairs (2i, 2i + 1): their counts first (cheap), then sums
    if not (npar[0:nb - 1:2] == npar[1:nb:2]).all():
        return plain
    real = np.arange(p)[None, :] < npar[:, None]
    even = np.arange(0, nb - 1, 2)
    sums = np.where(real, psl, 0).sum(axis=1)
    if not (sums[even] == sums[even + 1]).all():
        return plain                                 # (or a parent twice: plain as well)
    if p == 1:      # one parent per row (most of a logic circuit's later layers): no sort
        order = rows = None
        slots = np.where(real, psl, -1)
    else:
        order = np.argsort(np.where(real, psl, np.iinfo(np.int64).max), axis=1, kind="stable")
        rows = np.arange(nb)[:, None]                # psl[rows, order]: take_along_axis
        slots = psl[rows, order]
        slots[~real] = -1                            # rows sorted, padding alike
        if (real[:, 1:] & (slots[:, 1:] == slots[:, :-1])).any():   # a parent twice in a list
            return plain
    same_next = (slots[1:] == slots[:-1]).all(axis=1)    # block i lists block i + 1's set
    # G qualifies when every change of set (between blocks b - 1 and b) has
    # G | b: for powers of two, G <= the lowest set bit of every such b
    changes = np.flatnonzero(~same_next) + 1
    limit = int((changes & -changes).min()) if changes.size else 2 * nb
    best = None
    g = 2
    while g * block_size <= max_rows and g < 2 * nb:
        if g > limit:
            break
        reads = int(npar[::g].sum())
        if best is None or reads < best[1]:
            best = (g, reads)
        g *= 2
    if best is None or best[1] > UNION_MAX_READS * total:
        return plain
    width = int(npar.max())
    if order is None:                                # width 1: the lists as they are
        starts = np.where(real, pps, -1)
    else:
        starts = pps[rows, order[:, :width]]
        starts[~real[:, :width]] = -1
    union = slots[:, :width]
    union[union < 0] = 0
    return best[0], union, starts, npar.copy()


def _parent_union_search(psl: np.ndarray, pps: np.ndarray, npar: np.ndarray, block_size: int,
                         max_rows: int, gaps_ok: bool
                         ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """parent_union by the unions of every candidate G (np.unique of the
    (run, parent) pairs), taking runs whose blocks lack some of the union's
    parents where `gaps_ok`."""
    nb, p = psl.shape
    total = int(npar.sum())
    plain = (1, psl, pps, npar)
    rows, cols = np.nonzero(np.arange(p)[None, :] < npar[:, None])
    slots = psl[rows, cols]
    span = int(slots.max()) + 1
    if np.unique(rows * span + slots).size < total:      # a parent twice in one list
        return plain
    best = None
    g = 2
    while g * block_size <= max_rows and g < 2 * nb:     # the last run may be short
        uniq, inv = np.unique(rows // g * span + slots, return_inverse=True)
        count = np.bincount(uniq // span, minlength=-(-nb // g))
        gaps = bool((np.repeat(count, g)[:nb] != npar).any())
        if (gaps_ok or not gaps) and (best is None or uniq.size < best[1].size):
            best = (g, uniq, inv)
        g *= 2
    if best is None or best[1].size > UNION_MAX_READS * total:
        return plain
    g, uniq, inv = best
    groups = -(-nb // g)
    ugroup = uniq // span
    count = np.bincount(ugroup, minlength=groups)
    upos = np.arange(uniq.size) - (np.cumsum(count) - count)[ugroup]
    union = np.zeros((groups, int(count.max())), dtype=np.int64)
    union[ugroup, upos] = uniq % span
    starts = np.full((nb, union.shape[1]), -1, dtype=np.int64)
    starts[rows, upos[inv]] = pps[rows, cols]
    return g, np.repeat(union, g, axis=0)[:nb], starts, np.repeat(count, g)[:nb]


TILE_FLOWS = True     # False: node flows of runs through sum_backwards (A/B runs)
TILE_MIN_ROWS = 16    # other runs of fewer rows keep the per-pair node-flow kernel


def is_tile_part(part: SumKernelPart) -> bool:
    """Whether a sum partition's node flows go through its forward tiles
    (tile_flows.py: one [K x rows] dot per run and child chunk, atomics
    into the children) instead of the per-pair kernel (a 16-row masked dot
    per (child block, parent row) pair, in a chain as long as the child's
    parent count). Small blocks only (< 16 rows, where the per-pair dots
    are masked): runs of >= TILE_MIN_ROWS rows, and every partition of the
    row-tile pass (kernel option `tile_rows`), whose short runs (the 1..8
    row remainders of a tiled group) also beat the per-pair form on the
    model of bench/step_model.py (HCLT-128 keep 0.1: 12.1 -> 9.8 ms). One-row
    layouts from elsewhere (logic circuits) keep their kernels."""
    if not TILE_FLOWS or part.block_size >= 16:
        return False
    return part.rows >= TILE_MIN_ROWS or "tile_rows" in part.options


def drop_parents(parent_slots: np.ndarray, parent_param_starts: np.ndarray,
                 num_parents: np.ndarray, dropped: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A backward partition's [nb, P] parent lists without the parents
    whose slot is flagged in `dropped` (bool per slot): (slots, starts,
    counts), the kept parents moved to the front of each row in their order,
    P cut to the longest list."""
    psl = np.asarray(parent_slots, dtype=np.int64)
    pps = np.asarray(parent_param_starts, dtype=np.int64)
    npar = np.asarray(num_parents, dtype=np.int64)
    keep = (np.arange(psl.shape[1])[None, :] < npar[:, None]) & ~dropped[psl]
    order = np.argsort(~keep, axis=1, kind="stable")
    counts = keep.sum(axis=1)
    width = int(counts.max(initial=0))
    slots = np.take_along_axis(psl, order, axis=1)[:, :width]
    starts = np.take_along_axis(pps, order, axis=1)[:, :width]
    pad = np.arange(width)[None, :] >= counts[:, None]
    slots[pad] = 0
    starts[pad] = 0
    return slots, starts, counts


def sum_backward_part(child_block_size: int, parent_block_size: int, cblock_slots: np.ndarray,
                      cblock_num_parents: np.ndarray, parent_slots: np.ndarray,
                      parent_param_starts: np.ndarray, device: torch.device,
                      options: dict[str, str] | None = None,
                      child_grand: np.ndarray | None = None,
                      child_out: np.ndarray | None = None) -> SumBackwardKernelPart:
    """A SumBackwardKernelPart whose runs of child blocks over their parents'
    union (`parent_union`) the node-flow kernel walks as one block.
    child_grand [nb * child_block_size, A]: the child rows' values are read
    as sums of these rows; child_out [.., A_out]: their flows go to these
    rows (fusion.py)."""
    g, slots, starts, num_parents = parent_union(parent_slots, parent_param_starts,
                                                 cblock_num_parents, int(child_block_size))
    if g == 1:      # the lists as given (int32 ones then skip _i32's range check)
        slots, num_parents = np.asarray(parent_slots), np.asarray(cblock_num_parents)
    nb, p = slots.shape
    return SumBackwardKernelPart(int(child_block_size), int(parent_block_size), nb, p,
                                 _i32(cblock_slots, device), _i32(num_parents, device),
                                 _i32(slots, device), _i64(starts, device),
                                 dict(options or {}), group=g,
                                 child_grand=None if child_grand is None
                                 else _i32(child_grand, device),
                                 fused_arity=0 if child_grand is None
                                 else int(child_grand.shape[1]),
                                 child_out=None if child_out is None else _i32(child_out, device),
                                 out_arity=0 if child_out is None else int(child_out.shape[1]))


VAR_TILE = 64        # nodes per tile of the one-hot statistics kernel
MIN_VAR_RUN = 16     # tl.dot needs 16 rows; shorter runs waste the tile


def variable_tiles(node_vars: np.ndarray, tile: int = VAR_TILE
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Tiles of at most `tile` consecutive nodes over one variable:
    (start, count, variable) arrays, or None if runs average < MIN_VAR_RUN."""
    v = np.asarray(node_vars, dtype=np.int64)
    if v.size == 0:
        return None
    run_starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))   # (np.r_: 3x slower)
    run_lens = np.diff(np.append(run_starts, v.size))
    if v.size / run_starts.size < MIN_VAR_RUN:
        return None
    per_run = -(-run_lens // tile)
    run_of_tile = np.repeat(np.arange(run_starts.size), per_run)
    first_tile = np.cumsum(per_run) - per_run
    k = np.arange(run_of_tile.size) - first_tile[run_of_tile]
    starts = run_starts[run_of_tile] + k * tile
    counts = np.minimum(tile, run_starts[run_of_tile] + run_lens[run_of_tile] - starts)
    return starts, counts, v[starts]


def input_part(dist: int, slot_start: int, params_per_node: int, node_vars: np.ndarray,
               node_param_starts: np.ndarray, device: torch.device, atomic: bool = False,
               owner_mask: np.ndarray | None = None) -> InputKernelPart:
    ps = np.asarray(node_param_starts, dtype=np.int64)
    owners = ps if owner_mask is None else ps[owner_mask]
    tiles = variable_tiles(node_vars) if dist == 0 else None
    if tiles is not None:
        tiles = tuple(_i32(a, device) for a in tiles)
    return InputKernelPart(int(dist), int(slot_start), ps.size, int(params_per_node),
                           _i32(node_vars, device), _i64(ps, device), bool(atomic),
                           _i64(owners, device), tiles)


def _first_occurrence(keys: list[np.ndarray]) -> tuple[list[np.ndarray], list[bool]]:
    """Per array, a mask of entries whose key appears for the first time in
    the concatenation; and whether the array holds a key that occurs more
    than once there (a tie: one np.unique for all, no np.isin per array)."""
    if not keys:
        return [], []
    allk = np.concatenate(keys)
    ordered = np.sort(allk)
    if not (ordered[1:] == ordered[:-1]).any():     # no key twice (no ties): the usual case
        return [np.ones(k.size, dtype=bool) for k in keys], [False] * len(keys)
    uniq, first, inverse, counts = np.unique(allk, return_index=True, return_inverse=True,
                                             return_counts=True)
    is_first = np.zeros(allk.size, dtype=bool)
    is_first[first] = True
    bounds = np.cumsum([0] + [k.size for k in keys])
    repeated = np.concatenate([[0], np.cumsum(counts[inverse.reshape(-1)] > 1)])
    shares = repeated[bounds[1:]] > repeated[bounds[:-1]]
    out = [is_first[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
    return out, [bool(x) for x in shares]


NODE_PLAN = True     # False: node layouts walk their partitions too (A/B runs, tests)


def build_plan(layout: pcir.Layout, device: torch.device | str,
               slot_map: SlotMap | None = None, fuse: bool = False,
               table: ir.TensorTable | None = None) -> TritonPlan:
    """Decode `layout` into a TritonPlan on `device` (a loop over partitions
    only). With `slot_map` (scratch.compact_remap) every slot index goes
    through the map: the plan of the engine's compact fast path. With
    `fuse`, product partitions that only sums read are folded into those
    sums' loads (fusion.py): their forward launches disappear.

    The partitions are built on the host, where the writer analyses read
    their index arrays for free, and then moved in one copy
    (common/upload.py): a partition's arrays one `.to(device)` at a time
    are hundreds of small synchronous copies on a GPU. The merged sums are
    concatenated on the host too and travel in the same copy (a torch.cat
    per field on the device is a launch each, and their run tables a
    synchronous copy). `table`: the Layout's tensors decoded already (an
    engine decodes them once for both plans and the compact remap)."""
    host = _HOST
    t = ir.tensor_table(layout) if table is None else table
    if NODE_PLAN and slot_map is None and not fuse:
        from pccompiler.backends.triton.node_plan import build_node_plan
        built = build_node_plan(layout, t)
        if built is not None:       # a small node layout: a partition kind at a time
            return _finish_plan(*built, device)
    # the Layout's own dtype (int32 slots stay int32: cheaper to copy); every
    # analysis below converts to int64 where it computes
    arr = lambda name, shape: t[name].reshape(shape)  # noqa: E731
    if slot_map is None:
        slot = lambda a: a  # noqa: E731
    else:
        slot = lambda a: slot_map.remap[a]  # noqa: E731
    # Tie facts first: which parameter starts repeat, and their first users.
    sum_keys, in_keys = [], []
    for layer in layout.layers:
        for sp in layer.sum_partitions:
            sum_keys.append(arr(sp.block_param_starts, (int(sp.num_blocks),)))
        for ip in layer.input_partitions:
            in_keys.append(arr(ip.node_param_starts, (int(ip.num_nodes),)))
    sum_first, sum_shared = _first_occurrence(sum_keys)
    in_first, in_shared = _first_occurrence(in_keys)   # shared: per partition, a tie
    num_slots = int(layout.num_slots) if slot_map is None else int(slot_map.num_slots)
    # Sum parts first: which products the row-tile parts among them read
    # decides the fusion (fusion.plan_fusion, Fusion.fuse_backward).
    sums_by_layer, raw_children, si = [], [], 0
    tile_children = np.zeros(int(layout.num_slots) if fuse else 0, dtype=bool)
    reread = np.zeros_like(tile_children)      # children that several runs of a tile part read
    for layer in layout.layers:
        sums_by_layer.append([])
        for sp in layer.sum_partitions:
            nb, k = int(sp.num_blocks), int(sp.max_children)
            ps = sum_keys[si]
            tied = bool(sp.has_ties) or sum_shared[si]
            raw_children.append(arr(sp.child_slots, (nb, k)))
            sums_by_layer[-1].append(sum_part(
                int(sp.block_size), slot(arr(sp.block_slots, (nb,))),
                arr(sp.block_num_children, (nb,)), slot(raw_children[-1]), ps, host, tied,
                sum_first[si], dict(sp.kernel_options)))
            if fuse and is_tile_part(sums_by_layer[-1][-1]):
                tile_children[child_rows(raw_children[-1])] = True
                rows = child_rows(raw_children[-1][run_heads(sums_by_layer[-1][-1])])
                seen = np.bincount(rows, minlength=reread.size)
                reread[seen > 1] = True
            si += 1
    fusion = None
    if fuse:
        fusion = plan_fusion(layout, None if fusion_rules.FUSE_TILE_CHILDREN else reread)
        fusion.fuse_backward(tile_children if fusion_rules.FUSE_BACKWARD else None)
        for part, raw in zip((p for parts in sums_by_layer for p in parts), raw_children):
            grand, a = fusion.of(raw)
            if grand is not None:
                part.grand_slots, part.fused_arity = _i32(slot(grand), host), a
    layers, ii = [], 0
    for li, layer in enumerate(layout.layers):
        lp = LayerPlan(kind=int(layer.kind))
        for ip in layer.input_partitions:
            n = int(ip.num_nodes)
            ps = in_keys[ii]
            tied = bool(ip.has_ties) or in_shared[ii]
            lp.inputs.append(input_part(DIST_CODES[ip.dist], int(slot(int(ip.slot_start))),
                                        int(ip.params_per_node), arr(ip.node_vars, (n,)), ps,
                                        host, tied, in_first[ii]))
            ii += 1
        # folded partitions merge only among themselves (fused, fused_bwd)
        kinds = [(False, False) if fusion is None else fusion.kind(li, pi)
                 for pi in range(len(layer.product_partitions))]
        for kind in sorted(set(kinds)):
            runs = merge_product_runs([(int(slot(int(pp.slot_start))),
                                        slot(arr(pp.child_slots, (int(pp.num_nodes),
                                                                  int(pp.num_children)))))
                                       for pp, pk in zip(layer.product_partitions, kinds)
                                       if pk == kind])
            for start, cs in runs:
                lp.products.append(product_part(start, cs, host))
                lp.products[-1].fused, lp.products[-1].fused_bwd = kind
        lp.products.sort(key=lambda p: p.slot_start)
        lp.sums = sums_by_layer[li]
        lp.tile_flows = [part for part in lp.sums if is_tile_part(part)]
        if lp.tile_flows:
            tiled = np.zeros(num_slots, dtype=bool)
            for part in lp.tile_flows:
                tiled[block_rows(part.block_slots.numpy(), part.block_size)] = True
        for bp in layer.sum_backward_partitions:
            nb, p = int(bp.num_blocks), int(bp.max_parents)
            raw_c, npar = arr(bp.cblock_slots, (nb,)), arr(bp.cblock_num_parents, (nb,))
            pslots, pstarts = slot(arr(bp.parent_slots, (nb, p))), arr(bp.parent_param_starts,
                                                                       (nb, p))
            if lp.tile_flows:     # their pairs run in tile_flows; the part may end empty
                pslots, pstarts, npar = drop_parents(pslots, pstarts, npar, tiled)
                live = npar > 0
                raw_c, npar, pslots, pstarts = raw_c[live], npar[live], pslots[live], \
                    pstarts[live]
            grand = out = None
            if fusion is not None:    # the child rows' grand slots and flow targets
                crows = block_rows(raw_c, int(bp.child_block_size))
                grand, out = fusion.of(crows)[0], fusion.out_of(crows)[0]
            lp.sum_backwards.append(sum_backward_part(
                int(bp.child_block_size), int(bp.parent_block_size), slot(raw_c), npar, pslots,
                pstarts, host, dict(bp.kernel_options), None if grand is None else slot(grand),
                None if out is None else slot(out)))
        layers.append(lp)
    if slot_map is None:
        plan = TritonPlan(int(layout.num_slots), int(layout.root_slot), layers)
    else:
        plan = TritonPlan(slot_map.num_slots, int(slot(int(layout.root_slot))), layers,
                          scratch_start=slot_map.scratch_start)
        for li in np.flatnonzero(slot_map.scratch_layers):
            layers[li].scratch = True
        for li, rows in slot_map.zero_rows.items():
            layers[li].zero_flow_rows = torch.from_numpy(rows)
    return _finish_plan(plan, None, device)


def _finish_plan(plan: TritonPlan, walk, device: torch.device | str) -> TritonPlan:
    """The steps after the parts: store flags (`walk`: the writers'
    writer_marks.Walk, or None), merged sums, the upload."""
    mark_first_writers(plan, _HOST, walk)
    # node_plan's plans (those with a walk) have no ties: every owner list is 0..nb-1
    plan.merged_sums = merge_sum_parts([p for lp in plan.layers for p in lp.sums],
                                       untied=walk is not None)
    upload_fields(plan, device)
    return plan


def merge_sum_parts(parts: list[SumKernelPart], untied: bool = False) -> list[SumKernelPart]:
    """Concatenate sum partitions of equal (block size, max fan-in, group); a
    partition alone in its class is reused as is. Owner block indices are
    shifted into the concatenation; ties anywhere make the whole class
    atomic; fused members' grand slots are padded to one width (`_merged_grand`).
    `untied`: every part owns all its blocks (owner_blocks 0..nb-1), so the
    shifted concatenation is 0..total-1 (one arange, not five ops a class)."""
    classes: dict[tuple[int, int, int, bool], list[SumKernelPart]] = {}
    for part in parts:
        classes.setdefault((part.block_size, part.max_children, part.group,
                            part.runs is not None), []).append(part)
    merged = []
    for (bs, k, g, _), members in classes.items():
        if len(members) == 1:
            merged.append(members[0])
            continue
        offsets = np.cumsum([0] + [m.num_blocks for m in members[:-1]])
        cat = lambda name: torch.cat([getattr(m, name) for m in members])  # noqa: E731
        total = sum(m.num_blocks for m in members)
        owners = torch.arange(total, dtype=members[0].owner_blocks.dtype) if untied else \
            _shifted_cat([m.owner_blocks for m in members], offsets)
        runs = None
        if members[0].runs is not None:     # run starts shifted into the concatenation
            runs = torch.cat([m.runs[:-1].to(torch.int64) + int(off)
                              for m, off in zip(members, offsets)]
                             + [torch.tensor([total], device=members[0].runs.device)]
                             ).to(members[0].runs.dtype)
        merged.append(SumKernelPart(bs, total, k,
                                    cat("block_slots"), cat("block_num_children"),
                                    cat("child_slots"), cat("block_param_starts"),
                                    any(m.atomic for m in members), owners,
                                    dict(members[0].options), group=g, runs=runs,
                                    **_merged_grand(members)))
    return merged


def _shifted_cat(tensors: list[torch.Tensor], offsets: np.ndarray) -> torch.Tensor:
    """torch.cat of `tensors` with offsets[i] added to the i-th (in int64,
    back to the first one's dtype): one add for all, not one per member."""
    first = tensors[0]
    # numpy's repeat: torch.repeat_interleave took ~7 ms a call on the CPU
    shift = np.repeat(np.asarray(offsets, dtype=np.int64), [t.numel() for t in tensors])
    return (torch.cat(tensors).to(torch.int64) + torch.from_numpy(shift).to(first.device)
            ).to(first.dtype)


def _merged_grand(members: list[SumKernelPart]) -> dict:
    """The grand slots of concatenated parts (fusion.py), padded to the
    widest arity with slot 1 (log 1, not loaded); a plain member reads its
    children through (child, 1, ..). {} when no member is fused, so fused
    and plain parts still share one launch (EM reads no child at all)."""
    a = max(m.fused_arity for m in members)
    if not a:
        return {}
    tables = []
    for m in members:
        grand = m.grand_slots if m.fused_arity else m.child_slots[..., None]
        tables.append(torch.nn.functional.pad(grand, (0, a - grand.shape[-1]), value=1))
    return dict(grand_slots=torch.cat(tables), fused_arity=a)

ZERO_ALL_FRACTION = 0.5   # zeroing most rows: one memset beats an indexed fill


def _sum_backward_writer(part: SumBackwardKernelPart) -> tuple[np.ndarray, bool]:
    """(rows written, may store) of a node-flow partition: its child rows, or
    with backward fusion the rows of `child_out` (a folded product's
    children, a plain child row itself), which several rows of the part may
    share: then it adds atomically (`atomic_out`) and never stores."""
    if not part.fused_bwd:
        return block_rows(part.cblock_slots.cpu().numpy(), part.child_block_size), True
    rows = child_rows(part.child_out.cpu().numpy())
    part.atomic_out = _has_duplicates(rows)
    return rows, not part.atomic_out


TILE_STORE = True     # False: row tiles' node flows always add atomically (A/B runs)


def _tile_flow_writer(part: SumKernelPart) -> tuple[np.ndarray, bool]:
    """(rows written, may store) of a part's tile flows: the children of
    each run once (a run's blocks share one list); it may store when no
    child is in two runs (a pruned group of one run, as DENSE or one tile
    of all its rows: the kernel's programs then write disjoint rows)."""
    rows = child_rows(part.child_slots.cpu().numpy()[run_heads(part)])
    return rows, TILE_STORE and not _has_duplicates(rows)


def run_heads(part: SumKernelPart) -> np.ndarray:
    """The first block of each program group (run) of a sum part."""
    if part.runs is not None:
        return part.runs.cpu().numpy()[:-1].astype(np.int64)
    return np.arange(0, part.num_blocks, part.group)


def mark_first_writers(plan: TritonPlan, device: torch.device, walk=None) -> None:
    """Let a partition *store* node flows when it is the first writer of
    every row it writes (writers.first_writer_stores). In HCLT every node
    has one parent, so no flow row is read before it is written and the
    backward neither zeroes the buffer nor reads child flows before adding.

    A product partition qualifies only if its children are unique within it
    (no atomics). On a compact plan the scratch region is forgotten before
    each sum layer that refills it. The remaining rows (plus slots 0, 1) are
    zeroed. `walk`: a plain plan's writers (writer_marks.Walk) where the
    builder has them."""
    if mark_plain_writers(plan, device, WRITER_RATIOS, ZERO_ALL_FRACTION, walk):
        return            # a node layout's plan: the same marks in whole-array steps
    region = slice(plan.scratch_start if plan.scratch_start is not None else plan.num_slots,
                   plan.num_slots)
    writers = [[_sum_backward_writer(p) for p in lp.sum_backwards]
               + [_tile_flow_writer(p) for p in lp.tile_flows]
               + [(np.zeros(0, dtype=np.int64), False) if p.fused_bwd
                  else (child_rows(p.child_slots.cpu().numpy(), None), not p.atomic)
                  for p in lp.products]
               for lp in plan.layers]
    refills = lambda li: region if li > 0 and plan.layers[li - 1].scratch else None  # noqa: E731
    # rows first written by a tile part (only those are read below)
    fresh: list[list[np.ndarray]] | None = [] if any(lp.tile_flows for lp in plan.layers) \
        else None
    flags = first_writer_stores(writers, plan.num_slots, (plan.root_slot,),
                                refills if any(lp.scratch for lp in plan.layers) else None, fresh)
    stored = np.zeros(plan.num_slots, dtype=bool)
    stored[plan.root_slot] = True
    for lp, layer_writers, layer_flags, layer_fresh in zip(plan.layers, writers, flags,
                                                           fresh or [None] * len(flags)):
        nbw, ntf = len(lp.sum_backwards), len(lp.tile_flows)
        for part, (rows, _), store in zip(lp.sum_backwards + lp.products,
                                          layer_writers[:nbw] + layer_writers[nbw + ntf:],
                                          layer_flags[:nbw] + layer_flags[nbw + ntf:]):
            part.store = store
            if store:
                stored[rows] = True
        for part in lp.products:    # folded: no kernel reads or writes these flow rows
            if part.fused_bwd:
                stored[part.slot_start:part.slot_start + part.num_nodes] = True
        if ntf:     # rows the tiles write first: zeroed in the layer, not up front
            for part, store in zip(lp.tile_flows, layer_flags[nbw:nbw + ntf]):
                part.tile_store = store
            rows = np.unique(np.concatenate(layer_fresh[nbw:nbw + ntf]))
            stored[rows] = True
            adders = [f for f, store in zip(layer_fresh[nbw:nbw + ntf], layer_flags[nbw:nbw + ntf])
                      if not store]
            rows = np.unique(np.concatenate(adders)) if adders else rows[:0]
            lp.tile_zero_rows = torch.from_numpy(rows).to(device) if rows.size else None
    stored[:2] = False
    stored[region] = True       # every moved row is stored in its layer (scratch.py)
    zero = np.flatnonzero(~stored)
    plan.zero_rows = torch.from_numpy(zero).to(device)
    plan.zero_all = zero.size > ZERO_ALL_FRACTION * plan.num_slots
    mark_ratio_rows(plan, writers, device)


WRITER_RATIOS = True     # False: every sum partition takes its own ratio pass (A/B runs)


def mark_ratio_rows(plan: TritonPlan, writers: list, device: torch.device) -> None:
    """Let storing product partitions (and node-flow partitions that pass
    folded products' flows on, fusion.py) write training's log ratios.

    Training turns each sum layer's flows into log(flow) - value once they
    are final (`log_ratio_kernel`, one launch and one pass over the rows per
    partition). A sum partition whose every row has exactly one writer in
    the whole backward, a storing product partition, has its final flow the
    moment that product writes it: the product backward then stores the
    ratio itself and the sum partition needs no ratio pass. In HCLT and HMM
    every sum node has one parent product, so all but the root qualify.
    `writers` is `mark_first_writers`' per-layer (rows, may store) list."""
    if not WRITER_RATIOS:
        return
    every = [rows for layer_writers in writers for rows, _ in layer_writers]
    counts = np.bincount(np.concatenate(every) if every else np.zeros(0, dtype=np.int64),
                         minlength=plan.num_slots)
    # storing product partitions, and node-flow partitions that pass folded
    # products' flows on (backward fusion): both write their rows' final flow
    products = [(part, rows) for lp, layer_writers in zip(plan.layers, writers)
                for part, (rows, _) in zip(lp.products, layer_writers[len(lp.sum_backwards)
                                                                      + len(lp.tile_flows):])]
    products += [(part, rows) for lp, layer_writers in zip(plan.layers, writers)
                 for part, (rows, _) in zip(lp.sum_backwards, layer_writers) if part.fused_bwd]
    by_store_product = np.zeros(plan.num_slots, dtype=bool)
    for part, rows in products:
        if part.store:
            by_store_product[rows] = True
    ok = (counts == 1) & by_store_product
    if plan.scratch_start is not None:
        ok[plan.scratch_start:] = False        # a reused region holds other nodes' rows
    ratio = np.zeros(plan.num_slots, dtype=bool)
    sums = [part for lp in plan.layers for part in lp.sums]
    if sums:        # per part: rows, and all of them ok (one pass over all parts' rows)
        rows = [block_rows(part.block_slots.cpu().numpy(), part.block_size) for part in sums]
        mark_ratio_by_writer(sums, np.concatenate(rows),
                             np.array([r.size for r in rows], dtype=np.int64), ok, ratio)
    for part, rows in products:
        part.ratio_out = part.store and bool(ratio[rows].any())
    plan.ratio_rows = torch.from_numpy(ratio.astype(np.uint8)).to(device) if ratio.any() \
        else None
