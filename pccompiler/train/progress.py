"""Progress output for long training loops (stderr, no dependency)."""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

import numpy as np


class Progress:
    """A plain-text progress bar on stderr (no dependency)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total, self.label, self.width = max(1, total), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream is not None

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        filled = int(self.width * done / self.total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (self.width - filled)}] "
                          f"{done}/{self.total}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (len(self.label) + self.width + 24) + "\r")
            self.stream.flush()


def batches(n: int, batch_size: int, order: np.ndarray | None = None) -> Iterable[np.ndarray]:
    order = np.arange(n) if order is None else order
    for start in range(0, n, batch_size):
        yield order[start: start + batch_size]
