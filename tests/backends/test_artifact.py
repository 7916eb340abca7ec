"""The .pcc file: round trip, and clear LoadErrors for bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import pccompiler
from pccompiler.ir import artifact
from pccompiler.errors import LoadError
from tests.conformance.circuits import random_data, tied


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tied()
    circuit = pccompiler.compile(model, backend="torch", device="cpu")
    x = random_data(model, 100, seed=0)
    circuit.em_step(x, step_size=0.5, pseudocount=0.1)   # parameters differ from the Model's
    path = str(tmp_path_factory.mktemp("pcc") / "m.pcc")
    circuit.save(path)
    return path, circuit, x


def test_round_trip_keeps_parameters_and_needs_no_pass(saved, monkeypatch):
    path, circuit, x = saved
    from pccompiler import passes
    monkeypatch.setattr(passes, "compile_model", None)   # any pass run would fail
    loaded = pccompiler.load(path)
    torch.testing.assert_close(loaded.log_prob(x), circuit.log_prob(x))
    assert loaded.manifest["backend"] == "torch"
    assert loaded.manifest["compiler_version"] == pccompiler.__version__


def test_corrupt_byte_is_refused(saved, tmp_path):
    path = saved[0]
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF
    bad = tmp_path / "bad.pcc"
    bad.write_bytes(bytes(data))
    with pytest.raises(LoadError, match="sha256"):
        pccompiler.load(str(bad))


def test_truncated_and_foreign_files_are_refused(saved, tmp_path):
    data = open(saved[0], "rb").read()
    (tmp_path / "short.pcc").write_bytes(data[:40])
    with pytest.raises(LoadError, match="truncated"):
        pccompiler.load(str(tmp_path / "short.pcc"))
    (tmp_path / "x.pcc").write_bytes(b"hello world, not a circuit")
    with pytest.raises(LoadError, match="not a .pcc file"):
        pccompiler.load(str(tmp_path / "x.pcc"))


def test_other_compiler_version_is_refused(saved, monkeypatch):
    monkeypatch.setattr(artifact, "__version__", "9.9.9")
    with pytest.raises(LoadError, match="recompile"):
        pccompiler.load(saved[0])


def test_save_is_atomic_and_leaves_no_temp(saved, tmp_path):
    path = tmp_path / "a.pcc"
    saved[1].save(str(path))
    assert os.listdir(tmp_path) == ["a.pcc"]
    assert artifact.is_pcc(str(path))


def test_layout_of_another_structure_is_refused(saved):
    art = artifact.read_pcc(saved[0])
    art.layout.model_hash = "0" * 64
    data = artifact.encode(art.model, art.layout, "torch", "cpu", "float32")
    with pytest.raises(LoadError, match="does not match the model"):
        artifact.decode(data)
