"""Copy-on-write editing of a pcir.Model for passes.

Passes are pure: they never modify their input. `ModelEdit` collects the
groups and tensors a pass replaces and builds the new Model in one go
(one C-level copy of the message, then the replaced entries), so a pass that
touches 3 groups of a 1 GB model costs one memcpy, not a re-encode.
"""

from __future__ import annotations

import numpy as np

from pccompiler import ir
from pccompiler.ir import pcir
from pccompiler.ir.helpers import is_repeated_field


def index_dtype(max_value: int):
    """int32 where every index fits, else int64."""
    return np.int32 if max_value < 2 ** 31 else np.int64


# The index dtypes `add_index_tensor` writes, as stored (little-endian), by
# scalar type and by dtype (the passes pass np.int32 / np.int64: no np.dtype
# call per tensor)
_INDEX_DTYPES = {np.dtype(np.int32): (pcir.INT32, np.dtype("<i4")),
                 np.dtype(np.int64): (pcir.INT64, np.dtype("<i8"))}
_INDEX_DTYPES.update({np.int32: _INDEX_DTYPES[np.dtype(np.int32)],
                      np.int64: _INDEX_DTYPES[np.dtype(np.int64)]})


def add_index_tensor(tensors, array: np.ndarray, name: str, dtype,
                     decoded: dict | None = None) -> pcir.Tensor:
    """ir.add_tensor(tensors, np.asarray(array, dtype=dtype), name) for an
    int32 or int64 `dtype`: the same Tensor (name, dtype, dims, little-endian
    bytes) without add_tensor's dtype dispatch, which cost a logic
    circuit's node layout (400 index tensors) ~1.5 us a tensor. `decoded`,
    if given, receives decoded[name]: what ir.to_numpy reads back from the
    Tensor (a read-only view of its bytes)."""
    code, stored = _INDEX_DTYPES.get(dtype) or _INDEX_DTYPES[np.dtype(dtype)]
    data = np.ascontiguousarray(array, dtype=stored)
    raw = data.tobytes()
    shape = data.shape
    if decoded is not None:
        view = np.frombuffer(raw, dtype=stored)
        decoded[name] = view if len(shape) == 1 else view.reshape(shape)
    tensor = tensors.add()          # fields one by one: a quarter less than add()'s keywords
    tensor.name, tensor.dtype, tensor.raw_data = name, code, raw
    tensor.dims.extend(shape)
    return tensor


def child_offsets(model: pcir.Model, group: pcir.Group) -> np.ndarray:
    """Column offset of each child group of a sum group, plus the total C."""
    sizes = [model.groups[c].num_nodes for c in group.sum.children]
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])


def readers(model: pcir.Model) -> dict[int, list[int]]:
    """group id -> ids of the groups that read it (each parent listed once)."""
    out: dict[int, list[int]] = {g.id: [] for g in model.groups}
    for g in model.groups:
        children = g.sum.children if g.kind == pcir.SUM else g.product.children
        for c in dict.fromkeys(children):
            out[c].append(g.id)
    return out


class ModelEdit:
    """Pending replacements of groups, tensors and ties of one Model."""

    def __init__(self, model: pcir.Model, table: ir.TensorTable | None = None):
        self.model = model
        self.table = table if table is not None else ir.tensor_table(model)
        self.groups: dict[int, pcir.Group] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.removed: set[str] = set()
        self.ties: list[tuple[int, int]] | None = None
        # edge tensor name -> (pattern, block size) it was rewritten to; tied
        # groups may share one edge tensor and must follow the first rewrite
        self.converted: dict[str, tuple[int, int]] = {}

    def follow_shared_edges(self, gid: int) -> bool:
        """If gid's edge tensor was already rewritten (for a group it shares
        it with), give gid the same pattern and return True."""
        g = self.view(gid)
        if g.kind != pcir.SUM or not g.sum.edges or g.sum.edges not in self.converted:
            return False
        pattern, block = self.converted[g.sum.edges]
        group = self.group(gid)
        group.sum.pattern, group.sum.block_size = pattern, block
        if pattern == pcir.DENSE:
            group.sum.edges = ""
        return True

    def group(self, gid: int) -> pcir.Group:
        """A mutable copy of group `gid` (the same copy on every call)."""
        g = self.groups.get(gid)
        if g is None:
            g = pcir.Group()
            g.CopyFrom(self.model.groups[gid])
            self.groups[gid] = g
        return g

    def view(self, gid: int) -> pcir.Group:
        """The group as edited so far (read only)."""
        return self.groups.get(gid, self.model.groups[gid])

    def array(self, name: str) -> np.ndarray:
        if name in self.arrays:
            return self.arrays[name]
        return self.table[name]

    def set_array(self, name: str, array: np.ndarray) -> None:
        self.arrays[name] = np.ascontiguousarray(array)
        self.removed.discard(name)

    def remove(self, name: str) -> None:
        self.removed.add(name)
        self.arrays.pop(name, None)

    @property
    def changed(self) -> bool:
        return bool(self.groups or self.arrays or self.removed or self.ties is not None)

    def build(self) -> pcir.Model:
        """The new Model (the input Model itself when nothing changed)."""
        if not self.changed:
            return self.model
        new = copy_without_tensors(self.model)
        for gid, g in self.groups.items():
            new.groups[gid].CopyFrom(g)
        if self.ties is not None:
            del new.ties[:]
            for group, target in self.ties:
                new.ties.add(group=int(group), target=int(target))
        pending = dict(self.arrays)
        for t in self.model.tensors:
            if t.name in self.removed:
                continue
            if t.name in pending:
                new.tensors.append(ir.from_numpy(pending.pop(t.name), t.name))
            else:
                new.tensors.append(t)
        new.tensors.extend(ir.from_numpy(a, n) for n, a in pending.items())
        return new


def copy_without_tensors(model: pcir.Model) -> pcir.Model:
    """A copy of everything in `model` except its tensors (cheap: no bulk data)."""
    new = pcir.Model()
    for fd, value in model.ListFields():
        if fd.name == "tensors":
            continue
        if fd.message_type is not None and is_repeated_field(fd):
            if fd.message_type.GetOptions().map_entry:
                getattr(new, fd.name).update(value)
            else:
                getattr(new, fd.name).extend(value)
        elif is_repeated_field(fd):
            getattr(new, fd.name).extend(value)
        elif fd.message_type is not None:
            getattr(new, fd.name).CopyFrom(value)
        else:
            setattr(new, fd.name, value)
    return new
