"""The d-DNNF importer (pccompiler/frontend/nnf.py): a hand-written .nnf with
constants and unsmooth ORs, the shared SDDs rewritten as .nnf (an SDD is a
d-DNNF) against the SDD importer, and errors naming the line."""

from __future__ import annotations

import numpy as np
import pytest

from pccompiler import ir
from pccompiler.errors import LoadError
from pccompiler.frontend.nnf import from_nnf
from pccompiler.frontend.sdd import from_sdd
from pccompiler.logic import model_count, mpe, wmc

from tests.cli.test_ir_commands import pcc
from tests.logic.circuits import SHARED, shared_sdd, assignments, brute_mpe, brute_wmc, tiny_formula

# f = (x1 & x2) | (~x1 & x3), ANDed with true and ORed with false.
NNF = """c f = (x1 & x2) | (~x1 & x3), with constants
nnf 11 12 3
L 1
L 2
L -1
L 3
A 2 0 1
A 2 2 3
O 1 2 4 5
A 0
O 0 0
A 2 6 7
O 0 2 9 8
"""


def sdd_to_nnf(text: str) -> str:
    """An .sdd file as an equivalent .nnf (decisions -> OR of ANDs)."""
    lines, ids = [], {}
    for line in text.splitlines():
        f = line.split()
        if not f or f[0] in ("c", "sdd"):
            continue
        if f[0] == "L":
            lines.append(f"L {f[3]}")
        elif f[0] in "TF":
            lines.append("A 0" if f[0] == "T" else "O 0 0")
        else:
            elems = []
            for p, s in zip(f[4::2], f[5::2]):
                lines.append(f"A 2 {ids[p]} {ids[s]}")
                elems.append(str(len(lines) - 1))
            lines.append(f"O 0 {len(elems)} {' '.join(elems)}")
        ids[f[1]] = len(lines) - 1
    edges = sum(int(x.split()[1 if x[0] == "A" else 2]) for x in lines if x[0] != "L")
    return f"nnf {len(lines)} {edges} {{n}}\n" + "\n".join(lines) + "\n"


def test_tiny_nnf_folds_smooths_and_counts(tmp_path):
    path = tmp_path / "f.nnf"
    path.write_text(NNF)
    model = from_nnf(path)
    ir.check(model)
    assert model.metadata["semantics"] == "logic"
    x = assignments(3)
    assert model_count(model, x, np.zeros(x.shape, dtype=bool)) == tiny_formula(x).tolist()
    sat = tiny_formula(x).astype(bool)
    w = np.random.default_rng(0).uniform(size=(4, 3))
    np.testing.assert_allclose(np.exp(wmc(model, w)), brute_wmc(sat, x, w), rtol=1e-12)
    np.testing.assert_allclose(np.exp(mpe(model, w)[1]), brute_mpe(sat, x, w), rtol=1e-12)


@pytest.mark.parametrize("name", SHARED)
def test_shared_sdds_as_nnf_match_the_sdd_import(tmp_path, name):
    path = shared_sdd(name)
    by_sdd = from_sdd(path)
    nnf = tmp_path / f"{name}.nnf"
    nnf.write_text(sdd_to_nnf(path.read_text()).format(n=len(by_sdd.variables)))
    by_nnf = from_nnf(nnf)
    ir.check(by_nnf)
    assert model_count(by_nnf) == model_count(by_sdd)
    w = np.random.default_rng(1).uniform(0.05, 0.95, size=(2, len(by_sdd.variables)))
    np.testing.assert_allclose(wmc(by_nnf, w), wmc(by_sdd, w), rtol=1e-10)


@pytest.mark.parametrize("edit, message", [
    (("A 2 0 1", "A 2 0 2"), "f.nnf:7: node 4: the children of this AND share a variable"),
    (("A 2 2 3", "A 2 2 30"), "f.nnf:8: child 30 is not a node of an earlier line"),
    (("L 3", "L 4"), "f.nnf:6: literal 4 is not in +-1..3"),
    (("O 1 2 4 5", "O 1 3 4 5"), "f.nnf:9: the record has 4 integers, its child count says 5"),
    (("nnf 11 12 3", "nnf 12 12 3"), "f.nnf:2: the header says 12 nodes, the file has 11"),
    (("L 2", "X 2"), "f.nnf:4: unknown record 'X'"),
    (("O 0 2 9 8", "O 0 1 8"), "the circuit is false"),
])
def test_bad_nnf_names_the_line(tmp_path, edit, message):
    path = tmp_path / "f.nnf"
    path.write_text(NNF.replace(*edit))
    with pytest.raises(LoadError) as err:
        from_nnf(path)
    assert message in str(err.value)


def test_pcc_import_reads_nnf(tmp_path):
    (tmp_path / "f.nnf").write_text(NNF)
    out = pcc("import", tmp_path / "f.nnf", "-o", tmp_path / "f.pcir")
    assert out.returncode == 0, out.stderr
    assert model_count(ir.load(tmp_path / "f.pcir", check=True)) == [4]
