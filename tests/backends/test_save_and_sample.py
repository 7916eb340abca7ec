"""The Python API side of issue #20, point 1: CompiledCircuit.save and
ir.save check the path before encoding, sample(0) is an empty batch, devices
this machine lacks are one-line errors, and every file pccompiler writes gets
the process's current umask (not mkstemp's 0600, not the umask at import)."""

from __future__ import annotations

import os

import pytest
import torch

import pccompiler as pc
from pccompiler import ir
from pccompiler.errors import BackendError, DataError, PCError
from pccompiler.ir import artifact
from pccompiler.ir.fileio import atomic_write, check_writable
from tests import factories


@pytest.fixture(scope="module")
def circuit():
    return pc.compile(factories.small_dense_model(0), backend="torch", device="cpu")


@pytest.fixture
def umask():
    """Set the umask for one test and restore it after."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def test_save_checks_the_path_before_encoding(circuit, tmp_path, monkeypatch):
    def no_encoding(*args, **kwargs):
        raise AssertionError("encoded before the path was checked")
    monkeypatch.setattr(artifact, "encode", no_encoding)
    with pytest.raises(PCError, match="folder .*nofolder does not exist"):
        circuit.save(str(tmp_path / "nofolder" / "m.pcc"))
    with pytest.raises(PCError, match="is a directory"):
        circuit.save(str(tmp_path))
    with pytest.raises(PCError, match="names a folder"):
        circuit.save(str(tmp_path / "sub") + os.sep)
    assert list(tmp_path.iterdir()) == []


def test_ir_save_checks_the_path(tmp_path):
    with pytest.raises(PCError, match="is a directory"):
        ir.save(factories.small_dense_model(0), tmp_path)
    with pytest.raises(PCError, match="does not exist"):
        ir.save(factories.small_dense_model(0), tmp_path / "no" / "m.pcir")
    assert list(tmp_path.iterdir()) == []


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "new.pcc") == str(tmp_path / "new.pcc")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PCError, match="-o .*file/x: .*file is not a folder"):
        check_writable(tmp_path / "file" / "x", "-o")
    with pytest.raises(PCError, match="empty"):
        check_writable("")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write in a read-only folder")
def test_check_writable_read_only_folder(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PCError, match="permission denied"):
            check_writable(tmp_path / "m.pcc")
    finally:
        tmp_path.chmod(0o755)


def test_sample_zero_and_negative(circuit):
    empty = circuit.sample(0)
    assert empty.shape == (0, circuit.num_vars) and empty.dtype == torch.long
    with pytest.raises(DataError, match="n must be >= 0, not -1"):
        circuit.sample(-1)
    with pytest.raises(DataError, match="n must be an integer"):
        circuit.sample(2.5)
    assert circuit.sample(3).shape == (3, circuit.num_vars)


def test_unknown_or_absent_devices_are_backend_errors(circuit, tmp_path):
    model = factories.small_dense_model(0)
    with pytest.raises(BackendError, match="unknown device 'nonsense'"):
        pc.compile(model, backend="torch", device="nonsense")
    path = tmp_path / "m.pcc"
    circuit.save(str(path))
    with pytest.raises(BackendError, match="unknown device 'nonsense'"):
        pc.load(path, device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match=r"torch.cuda.is_available\(\) is False"):
            pc.compile(model, backend="torch", device="cuda")
        with pytest.raises(BackendError, match=r"torch.cuda.is_available\(\) is False"):
            pc.load(path, device="cuda:0")


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_follow_the_current_umask(circuit, tmp_path, umask, mask, mode):
    from pccompiler.train.checkpoint import write_checkpoint
    umask(mask)                                   # set after import: read live
    circuit.save(str(tmp_path / "m.pcc"))
    ir.save(factories.small_dense_model(0), tmp_path / "m.pcir", external=True)
    atomic_write(tmp_path / "s.csv", b"0,1\n")
    write_checkpoint(str(tmp_path / "m.pcc.ckpt"), circuit, {"epoch": 1}, {})
    for name in ("m.pcc", "m.pcir", "m.pcir.data", "s.csv", "m.pcc.ckpt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
