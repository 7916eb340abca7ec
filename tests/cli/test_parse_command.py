"""`pcc dump --exact` and `pcc parse`: a file goes to text and back to the
same Model; a bad text gives one error line naming the line number."""

from __future__ import annotations

import pytest

from pccompiler import ir
from pccompiler.cli.main import main
from tests import factories as F


def test_dump_exact_then_parse_gives_the_same_model(tmp_path, capsys):
    model = F.tied_model(seed=0)
    ir.save(model, tmp_path / "m.pcir", external_threshold=40)   # external data, inlined on load
    assert main(["dump", str(tmp_path / "m.pcir"), "--exact"]) == 0
    text = capsys.readouterr().out
    assert text == ir.dump_exact(model)
    (tmp_path / "m.txt").write_text(text)
    assert main(["parse", str(tmp_path / "m.txt"), "-o", str(tmp_path / "back.pcir")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert ir.load(tmp_path / "back.pcir") == model


def test_parse_refuses_bad_text_and_broken_models(tmp_path, capsys):
    text = ir.dump_exact(F.small_dense_model(0))
    (tmp_path / "bad.txt").write_text(text.replace("g4 = product", "g4 = produce"))
    assert main(["parse", str(tmp_path / "bad.txt"), "-o", str(tmp_path / "x.pcir")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pcc parse: error: ") and "bad.txt: line " in err
    assert "found 'produce'" in err and "\n" not in err
    (tmp_path / "broken.txt").write_text(text.replace("roots = [g9]", "roots = [g12]"))
    out = str(tmp_path / "broken.pcir")
    assert main(["parse", str(tmp_path / "broken.txt"), "-o", out]) == 1
    assert "roots" in capsys.readouterr().err
    assert main(["parse", str(tmp_path / "broken.txt"), "-o", out, "--no-check"]) == 0
    assert list(ir.load(out).roots) == [12]


@pytest.mark.parametrize("extra", [["--json"], ["--max-groups", "2"]])
def test_dump_exact_takes_no_summary_options(tmp_path, capsys, extra):
    ir.save(F.small_dense_model(0), tmp_path / "m.pcir")
    assert main(["dump", str(tmp_path / "m.pcir"), "--exact", *extra]) == 1
    assert "--exact" in capsys.readouterr().err
