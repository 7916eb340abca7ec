"""MNIST from the official IDX files (gzip-compressed).

Only the 10,000 test images (`t10k-images-idx3-ubyte.gz`), the test labels
and the train labels are available in the shared data folder: the train
images file is missing there, so `load_mnist("train")` fails with a clear
error unless a folder holding `train-images-idx3-ubyte.gz` is given. A common
stand-in is to split the test images 9000/1000 into train/valid.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from pccompiler.data.locate import find_file
from pccompiler.errors import DataError

_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049


def load_mnist(split: str = "test", root: str | os.PathLike | None = None,
               labels: bool = False, flatten: bool = True) -> np.ndarray:
    """MNIST images as uint8 [N, 784] (or [N, 28, 28] with flatten=False),
    or the labels uint8 [N] with labels=True.

    Each pixel is a categorical variable with 256 values, the usual input of
    HCLT / PD benchmarks (784 variables x 256 categories).
    """
    if split not in _PREFIX:
        raise DataError(f"unknown MNIST split {split!r}; expected 'train' or 'test'")
    kind = "labels-idx1" if labels else "images-idx3"
    name = f"{_PREFIX[split]}-{kind}-ubyte"
    hint = ("the MNIST train images are not in the shared data folder (only the 10k test "
            "images are); use split='test'") if split == "train" and not labels else ""
    path = find_file("mnist", [name + ".gz", name], root, hint)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:       # zlib.error: corrupt deflate data
        raise DataError(f"{path}: cannot read: {exc}") from exc
    header_len = 8 if labels else 16
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    header = np.frombuffer(raw[:header_len], dtype=">i4")
    magic, count = int(header[0]), int(header[1])
    if magic != (_LABEL_MAGIC if labels else _IMAGE_MAGIC):
        raise DataError(f"{path}: IDX magic {magic} is not that of an MNIST "
                        f"{'label' if labels else 'image'} file")
    shape = (count,) if labels else (count, int(header[2]), int(header[3]))
    body = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: {body.size} data bytes, the header promises {int(np.prod(shape))}")
    out = body.reshape(shape)
    if not labels and flatten:
        out = out.reshape(count, -1)
    return out.copy()
