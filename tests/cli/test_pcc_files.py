"""`pcc dump | stat` read compiled .pcc files too (the Model, or the Layout
with --layout), so a compiled artifact is as inspectable as a .pcir."""

from __future__ import annotations

import pccompiler as pc
from pccompiler.cli.main import main
from tests import factories


def _compiled_file(tmp_path):
    path = tmp_path / "m.pcc"
    pc.compile(factories.small_dense_model(0), backend="torch", device="cpu").save(str(path))
    return path


def test_dump_reads_pcc_model_and_layout(tmp_path, capsys):
    path = _compiled_file(tmp_path)
    assert main(["dump", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model ") and "\ng0 " in out
    assert main(["dump", "--layout", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("layout ") and "pipeline " in out and "layer 0" in out


def test_stat_reads_pcc(tmp_path, capsys):
    path = _compiled_file(tmp_path)
    assert main(["stat", str(path)]) == 0
    assert "groups" in capsys.readouterr().out
