"""Triton tests run on a GPU when one is present, else under the interpreter.

TRITON_INTERPRET must be set before triton is imported anywhere, so it is
set here (collection time) when no CUDA device exists.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

triton = pytest.importorskip("triton")


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pytest_collection_modifyitems(config, items):
    """log(0) = -inf is expected in these kernels; the interpreter (numpy)
    warns about it. Silence that one warning for this folder only."""
    here = str(__import__("pathlib").Path(__file__).parent)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:divide by zero encountered in log:RuntimeWarning"))
