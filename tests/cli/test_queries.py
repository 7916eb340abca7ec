"""Queries on the command line (#20 point 4), through the `pcc` command and
checked by brute-force enumeration:

- `pcc eval --missing`: empty and `?` cells are summed out (marginal LL);
- `pcc sample --given FILE`: one completion per row, filled cells kept;
- `pcc mpe CIRCUIT DATA`: the max-product completion, which is the exact
  most probable completion on a deterministic circuit and, on a circuit
  that is not deterministic, the argmax of the max-product value, not
  necessarily of the marginal (docs/queries.md).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir
from pccompiler.backends import reference as ref
from pccompiler.data.files import fill_missing
from tests import factories as F
from tests.cli.test_inspection import one_line_error
from tests.cli.test_ir_commands import pcc
from tests.reference.random_circuits import completions, logsumexp
from tests.reference.test_ref_mpe import decision_tree

EVIDENCE = "0,,2,1\n?,1,,0\n,,,\n2,0,1,2\n"
CATS = (3, 3, 3, 3)


def _table(text: str) -> tuple[np.ndarray, np.ndarray]:
    filled, mask = fill_missing(np.frombuffer(text.encode(), dtype=np.uint8))
    rows = [line for line in filled.tobytes().decode().splitlines() if line]
    x = np.array([[int(v) for v in line.split(",")] for line in rows], dtype=np.int64)
    return x, mask.reshape(x.shape)


def _rows(text: str) -> np.ndarray:
    return np.array([[int(v) for v in line.split(",")] for line in text.splitlines()])


def test_fill_missing_marks_empty_and_question_cells():
    raw = np.frombuffer(b"1,,0\n?,1,2\n,1,\n\n", dtype=np.uint8)
    filled, mask = fill_missing(raw)
    assert filled.tobytes() == b"1,0,0\n0,1,2\n0,1,0\n\n"
    assert mask.tolist() == [0, 1, 0, 1, 0, 0, 1, 0, 1]


@pytest.fixture
def files(tmp_path):
    model_path = tmp_path / "m.pcir"
    ir.save(F.small_dense_model(0), model_path)
    evidence = tmp_path / "evidence.csv"
    evidence.write_text(EVIDENCE)
    return model_path, evidence


def test_eval_missing_prints_the_marginal_ll(files):
    model_path, evidence = files
    result = pcc("eval", model_path, "--data", evidence, "--missing", "--backend", "torch")
    assert result.returncode == 0, result.stderr
    assert "4 samples, 7 of 16 values missing" in result.stdout
    printed = float(re.search(r"marginal LL (\S+) nats", result.stdout).group(1))
    model = ir.load(model_path)
    x, missing = _table(EVIDENCE)
    brute = np.mean([logsumexp(ref.log_prob(model, completions(x[r], missing[r], CATS)))
                     for r in range(len(x))])
    assert abs(printed - brute) < 1e-3
    one_line_error(pcc("eval", model_path, "--data", evidence), "evidence.csv", "line 1")


def test_eval_missing_names_a_bad_value(files, tmp_path):
    model_path, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("0,,2,1\n0,7,,1\n")
    one_line_error(pcc("eval", model_path, "--data", bad, "--missing"), "line 2, column 2")


def test_sample_given_completes_each_row(files, tmp_path):
    model_path, evidence = files
    out = tmp_path / "completed.csv"
    result = pcc("sample", model_path, "--given", evidence, "-o", out, "--seed", "3")
    assert result.returncode == 0, result.stderr
    done = _rows(out.read_text())
    x, missing = _table(EVIDENCE)
    assert done.shape == x.shape and np.all(done[~missing] == x[~missing])
    assert done.min() >= 0 and done.max() <= 2
    again = pcc("sample", model_path, "--given", evidence, "--seed", "3")
    assert np.array_equal(_rows(again.stdout), done)                 # stdout, same seed
    one_line_error(pcc("sample", model_path, "--given", tmp_path / "nofile.csv", "-o",
                       tmp_path / "x.csv"), "nofile.csv")
    assert not (tmp_path / "x.csv").exists()


def _mpe_rows(model: ir.pcir.Model, tmp_path, evidence: str) -> np.ndarray:
    path = tmp_path / "c.pcir"
    ir.save(model, path)
    data = tmp_path / "ev.csv"
    data.write_text(evidence)
    result = pcc("mpe", path, data, "--backend", "torch")
    assert result.returncode == 0, result.stderr
    return _rows(result.stdout)


def test_mpe_is_the_exact_argmax_on_a_deterministic_circuit(tmp_path):
    cats = (3, 2, 2, 3)
    model = pc.lower(decision_tree(list(range(4)), cats, np.random.default_rng(0)))
    evidence = "0,,1,\n,,,\n2,1,,?\n"
    done = _mpe_rows(model, tmp_path, evidence)
    x, missing = _table(evidence)
    for r in range(len(x)):
        full = completions(x[r], missing[r], cats)
        assert np.array_equal(done[r], full[np.argmax(ref.log_prob(model, full))])


def test_mpe_maximizes_max_product_not_the_marginal_without_determinism(tmp_path):
    # p(x0) = .4 [.05 .95] + .3 [.95 .05] + .3 [.95 .05]: the marginal argmax
    # is x0 = 0 (.59 against .41), the best single component says x0 = 1 (.38).
    x0 = pc.inputs(0, 3, pc.Categorical(2, params=[[.05, .95], [.95, .05], [.95, .05]]))
    x1 = pc.inputs(1, 3, pc.Categorical(2, params=[[.5, .5]] * 3))
    model = pc.lower(pc.summate(pc.multiply(x0, x1), num_nodes=1, weights=[[.4, .3, .3]]))
    done = _mpe_rows(model, tmp_path, ",1\n")
    full = completions(np.array([0, 1]), np.array([True, False]), (2, 2))
    marginal = ref.log_prob(model, full)
    max_product = ref.log_prob_groups(model, full, semiring="max")[model.roots[0]][:, 0]
    assert full[np.argmax(marginal)].tolist() == [0, 1]
    assert done.tolist() == [full[np.argmax(max_product)].tolist()] == [[1, 1]]


def test_mpe_errors_are_one_line_and_write_nothing(files, tmp_path):
    model_path, evidence = files
    bad = tmp_path / "bad.csv"
    bad.write_text("0,1\n")
    out = tmp_path / "out.csv"
    one_line_error(pcc("mpe", model_path, bad, "-o", out), "bad.csv", "2 columns")
    one_line_error(pcc("mpe", model_path, evidence, "-o", out, "--batch-size", "0"),
                   "--batch-size")
    assert not out.exists()
    ok = pcc("mpe", model_path, evidence, "-o", out, "--batch-size", "2")
    assert ok.returncode == 0 and _rows(out.read_text()).shape == (4, 4)
