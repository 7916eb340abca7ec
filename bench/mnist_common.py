"""What bench/mnist.py and bench/sparse_speed.py share: the MNIST split, the
HCLT tree, bits per dimension, the machine line, and a CUDA-aware clock.

Split: train = the first 50,000 of the 60,000 MNIST training images, valid
= the last 10,000, test = the 10,000 official test images (all 784 pixels x
256 categories, `pccompiler.data.load_mnist`).

The HCLT tree: bench/data/hclt_mnist_train_tree.npy holds the 783 edges of
`pccompiler.structures.chow_liu_tree(train[:50000], 256, num_bins=16)` (the
train split above; learning it takes minutes on 2 CPU cores, so it is
shipped). Without the file the tree is learned from the first 10,000 train
images at run time.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TRAIN_TREE = HERE / "data" / "hclt_mnist_train_tree.npy"
NUM_VARS = 784


def mnist_split(limit: int | None = None) -> dict[str, np.ndarray]:
    """{"train", "valid", "test"}: uint8 [N, 784] (the split in the module
    docstring); `limit` keeps the first `limit` rows of each (smoke tests)."""
    from pccompiler.data import load_mnist
    train_all, test = load_mnist("train"), load_mnist("test")
    out = {"train": train_all[:50_000], "valid": train_all[50_000:], "test": test}
    return {k: v[:limit] if limit else v for k, v in out.items()}


def hclt_tree(train: np.ndarray, notes: list[str]) -> nx.Graph:
    """The shipped Chow-Liu tree of the train split (or one learned now)."""
    tree = nx.Graph()
    if TRAIN_TREE.exists():
        tree.add_edges_from(np.load(TRAIN_TREE).astype(np.int64).tolist())
        notes.append(f"HCLT tree: {TRAIN_TREE.name} (Chow-Liu of the 50k train images, 16 bins)")
        return tree
    from pccompiler.structures import chow_liu_tree
    notes.append("HCLT tree: learned now from the first 10,000 train images (no shipped file)")
    return chow_liu_tree(train[:10_000], 256, num_bins=16)


def bpd(ll_nats: float, num_vars: int = NUM_VARS) -> float:
    """Bits per dimension of an average log-likelihood in nats per sample."""
    return -ll_nats / (num_vars * math.log(2))


def machine_line() -> str:
    import pccompiler
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU)"
    try:
        import triton
        tv = triton.__version__
    except ImportError:
        tv = "none"
    return (f"{gpu}; {os.cpu_count()} CPUs; torch {torch.__version__}, triton {tv}, "
            f"Python {platform.python_version()}, pccompiler {pccompiler.__version__}")


def command_line() -> str:
    return "python " + " ".join(sys.argv)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Clock:
    """Seconds of training only: `pause()` around evaluation, `resume()`
    after; reads synchronise the GPU first."""

    def __init__(self, device: str):
        self.device, self.total, self.start = device, 0.0, None

    def resume(self) -> None:
        sync(self.device)
        self.start = time.perf_counter()

    def pause(self) -> float:
        sync(self.device)
        if self.start is not None:
            self.total += time.perf_counter() - self.start
            self.start = None
        return self.total

    def now(self) -> float:
        """Training seconds so far (no sync: for deadline checks)."""
        return self.total + (time.perf_counter() - self.start if self.start is not None else 0.0)


def linear_step_size(start: float, end: float, steps_total: int):
    """step index -> step size going linearly from `start` to `end` over
    `steps_total` steps, then staying at `end` (PyJuice's multi_linear with
    one segment)."""
    def at(step: int) -> float:
        frac = min(step / max(steps_total, 1), 1.0)
        return start + (end - start) * frac
    return at


def save_results(results: dict, out: Path, stem: str, write_markdown, device: str) -> None:
    """Free cached GPU memory, then (re)write OUT/stem.json and OUT/stem.md:
    called after every run, so a stopped script keeps what it finished."""
    import json
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1))
    write_markdown(results, out / f"{stem}.md")
