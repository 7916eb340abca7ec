"""MNIST from the official IDX files (gzip-compressed).

`load_mnist("train")` reads `train-images-idx3-ubyte.gz` (60,000 images),
`load_mnist("test")` `t10k-images-idx3-ubyte.gz` (10,000). Where the train
images are missing (some copies of the shared data folder hold only the test
images) the error says so; a common stand-in is then to split the test
images 9000/1000 into train/valid.
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
    hint = ("put the MNIST train images in one of those folders, or use split='test' (the "
            "10k test images)") if split == "train" and not labels else ""
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
