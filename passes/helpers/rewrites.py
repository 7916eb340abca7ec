"""Parameter rewrites: how model' tensors are made from the input Model's.

Passes that permute nodes, reorder edges or add zero-weight pseudo-edges
change parameter tensors, and the layout cache must redo those changes on a
hit with the caller's *current* parameter values without running a pass. So
every such change is recorded as a flat gather:

    new.ravel() = where(index >= 0, source.ravel()[index], 0)

Gathers compose (a second pass's gather indexes the first's), so model'
keeps one record per tensor however many passes touched it. Structural
tensors (edges, index matrices) are not recorded: model''s structure is
stored whole in the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def apply_gather(source: np.ndarray, index: np.ndarray, shape: tuple) -> np.ndarray:
    """`source.ravel()[index]` with -1 -> 0, reshaped to `shape`, same dtype."""
    flat = np.ravel(source)
    out = flat[np.maximum(index, 0)]
    if index.size and index.min() < 0:
        out[index < 0] = 0
    return out.reshape(shape)


def _small(index: np.ndarray) -> np.ndarray:
    """int32 when the values fit (halves the cache entry), else int64."""
    if index.size == 0 or (index.max() < 2 ** 31 and index.min() >= -1):
        return index.astype(np.int32, copy=False)
    return index.astype(np.int64, copy=False)


@dataclass
class Gather:
    source: str              # tensor name in the input Model
    index: np.ndarray        # flat gather index (-1 = zero)


@dataclass
class ParamRewrites:
    """target tensor name -> Gather from the input Model (absent: identity)."""
    gathers: dict[str, Gather] = field(default_factory=dict)

    def record(self, name: str, index: np.ndarray) -> None:
        """Tensor `name` was replaced by `old.ravel()[index]` (-1: zero)."""
        index = np.asarray(index, dtype=np.int64).ravel()
        prev = self.gathers.get(name)
        if prev is not None:
            composed = prev.index[np.maximum(index, 0)].astype(np.int64)
            composed[index < 0] = -1
            index, source = composed, prev.source
        else:
            source = name
        self.gathers[name] = Gather(source, _small(index))

    def record_rename(self, new_name: str, old_name: str) -> None:
        prev = self.gathers.pop(old_name, None)
        self.gathers[new_name] = prev if prev is not None else Gather(old_name, None)

    def drop(self, name: str) -> None:
        self.gathers.pop(name, None)

    def __len__(self) -> int:
        return len(self.gathers)
