"""`pcc import` through the installed entry point, and the lazy export
`pccompiler.from_sdd`."""

from __future__ import annotations

import pccompiler as pc
from pccompiler import ir
from pccompiler.logic import model_count

from tests.cli.test_ir_commands import pcc
from tests.logic.circuits import SDD, write


def test_import_writes_a_checked_model(tmp_path):
    path = write(tmp_path)
    out = pcc("import", path, "-o", tmp_path / "f.pcir")
    assert out.returncode == 0, out.stderr
    assert "3 variables" in out.stdout and "f.pcir" in out.stdout
    model = ir.load(tmp_path / "f.pcir", check=True)
    assert model_count(model) == [4]
    assert ir.structure_hash(model) == ir.structure_hash(pc.from_sdd(path))
    other = tmp_path / "g.vtree"
    other.write_text((tmp_path / "f.vtree").read_text())
    (tmp_path / "g.sdd").write_text(SDD)
    (tmp_path / "f.vtree").unlink()
    out = pcc("import", path, "--vtree", other, "-o", tmp_path / "h.pcir")
    assert out.returncode == 0, out.stderr


def test_import_errors_are_one_line(tmp_path):
    path = write(tmp_path, SDD.replace("F 4", "F four"))
    out = pcc("import", path, "-o", tmp_path / "x.pcir")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "f.sdd:7: 'four' is not an integer" in out.stderr
    out = pcc("import", path, "-o", tmp_path / "no" / "x.pcir")   # output checked first
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = pcc("import", tmp_path / "f.vtree", "-o", tmp_path / "x.pcir")
    assert out.returncode == 1 and "expected .sdd or .nnf" in out.stderr
    assert not (tmp_path / "x.pcir").exists()


def test_readme_logic_example_runs(monkeypatch):
    """The README's logic-circuit example, as written, on the shared sudoku_4."""
    import pathlib

    import pytest

    from tests.logic.circuits import CIRCUITS
    if not (CIRCUITS / "sudoku_4.sdd").exists():
        pytest.skip("the shared circuits are not here")
    readme = pathlib.Path(__file__).resolve().parents[2] / "README.md"
    block = readme.read_text().split("## Logic circuits")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(CIRCUITS)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["model_count"](scope["model"]) == [288]
    assert scope["wt"].grad.shape == (8, 64) and scope["wt"].grad.abs().sum() > 0
