"""A third-party backend found through the `pccompiler.backends` entry-point
group: a temporary distribution (dist-info with entry_points.txt) on
sys.path, then `pcc compile --backend dummy`."""

from __future__ import annotations

import textwrap

import pytest

from pccompiler import backends, ir
from pccompiler.ir import artifact
from pccompiler.backends import registry
from pccompiler.cli.main import main as pcc
from tests.conformance.circuits import dense


@pytest.fixture
def dummy_distribution(tmp_path, monkeypatch):
    (tmp_path / "pcc_dummy_backend.py").write_text(textwrap.dedent('''
        from pccompiler.backends.torch import TorchBackend

        class DummyBackend(TorchBackend):
            """A third-party backend: the torch engine under another name."""
            name = "dummy"
    '''))
    info = tmp_path / "pcc_dummy_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pcc-dummy-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pccompiler.backends]\ndummy = pcc_dummy_backend:DummyBackend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    registry._instances.pop("dummy", None)


def test_entry_point_backend_is_found(dummy_distribution):
    assert "dummy" in backends.available_backends()
    assert type(backends.get_backend("dummy")).__name__ == "DummyBackend"


def test_pcc_compile_with_the_dummy_backend(dummy_distribution, capsys):
    src = dummy_distribution / "m.pcir"
    ir.save(dense(), str(src))
    out = dummy_distribution / "m.pcc"
    assert pcc(["compile", str(src), "--backend", "dummy", "--no-cache", "-o", str(out)]) == 0
    assert artifact.read_pcc(str(out)).manifest["backend"] == "dummy"
    assert pcc(["compile", "--list-backends"]) == 0
    assert "dummy" in capsys.readouterr().out.split()


def test_unknown_backend_is_one_line_error(tmp_path, capsys):
    src = tmp_path / "m.pcir"
    ir.save(dense(), str(src))
    assert pcc(["compile", str(src), "--backend", "nope", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "unknown backend 'nope'" in err and "Traceback" not in err
