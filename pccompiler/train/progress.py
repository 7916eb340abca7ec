"""Progress output for long training loops: a tqdm bar on stderr."""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

import numpy as np
from tqdm import tqdm


class Progress:
    """The bar of one epoch (tqdm): batches done, rate, ETA and the running
    log-likelihood. It draws only on a terminal: where `stream` is a file or
    a pipe it prints nothing (no carriage-return frames in logs)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.bar = tqdm(total=max(1, total), desc=label, unit="batch", leave=False,
                        file=stream if stream is not None else sys.stderr, disable=None,
                        dynamic_ncols=True)

    def update(self, done: int, ll: float | None = None) -> None:
        """`done` batches finished so far; `ll` the running train LL."""
        if ll is not None:
            self.bar.set_postfix_str(f"LL {ll:.4f}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def batches(n: int, batch_size: int, order: np.ndarray | None = None) -> Iterable[np.ndarray]:
    order = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield order[start: start + batch_size]
