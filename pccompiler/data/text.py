"""Character-level text as fixed-length integer sequences (HMM data).

The default corpus is tinyshakespeare (65 distinct characters) from the
shared data folder. Each character becomes its index in the sorted
vocabulary; the text is cut into non-overlapping windows of `seq_length`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pccompiler.data.locate import find_file
from pccompiler.errors import DataError


def load_text(path: str | os.PathLike | None = None, seq_length: int = 32,
              vocab: str | None = None, stride: int | None = None) -> tuple[np.ndarray, str]:
    """Return (sequences int64 [N, seq_length], vocab).

    `path`: a text file (default: tinyshakespeare.txt in the shared folder).
    `vocab`: the characters in index order (default: the sorted distinct
    characters of the file); a character outside it is a DataError.
    `stride`: step between windows (default seq_length: no overlap).
    """
    if seq_length < 1:
        raise DataError(f"seq_length must be >= 1, got {seq_length}")
    if path is None:
        path = find_file("text", ["tinyshakespeare.txt"])
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such text file")
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    if vocab is None:
        codes = np.unique(raw)
        vocab = bytes(codes.tolist()).decode("latin-1")
    table = np.full(256, -1, dtype=np.int64)
    vocab_codes = np.frombuffer(vocab.encode("latin-1"), dtype=np.uint8)
    table[vocab_codes] = np.arange(vocab_codes.size)
    ids = table[raw]
    if ids.size and ids.min() < 0:
        pos = int(np.argmax(ids < 0))
        raise DataError(f"{path}: byte offset {pos}: character {chr(raw[pos])!r} is not in the vocabulary")
    stride = seq_length if stride is None else stride
    if ids.size < seq_length:
        raise DataError(f"{path}: {ids.size} characters, fewer than seq_length={seq_length}")
    starts = np.arange(0, ids.size - seq_length + 1, stride)
    return ids[starts[:, None] + np.arange(seq_length)[None, :]], vocab
