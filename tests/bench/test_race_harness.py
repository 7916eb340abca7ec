"""The race's cases and report, without a GPU or pyjuice."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pccompiler import ir
from pccompiler.ir import pcir

import race
import race_cases
import race_report
from tests.bench._exact import ExactCircuit


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.25])
def test_block_sparse_model_keeps_the_fraction(fraction):
    """Every parent block keeps the same number of child blocks, the edge
    count is the kept fraction of the full layer, and the Model is a
    normalised distribution (exact probabilities of all 4 values sum to 1)."""
    model = race_cases.block_sparse_model(fraction, num_inputs=256, num_sums=128, block=32,
                                          num_cats=4, seed=1)
    ir.check(model)
    big = next(g for g in model.groups if g.kind == pcir.SUM and g.num_nodes == 128)
    assert big.sum.pattern == pcir.BLOCK_SPARSE and big.sum.block_size == 32
    pairs = ir.tensor_table(model)[big.sum.edges]
    per_parent = np.bincount(pairs[:, 0], minlength=4)
    assert np.all(per_parent == round(fraction * 8))
    work = race_cases.work_of(model)
    assert work.sum_edges == round(fraction * 8) * 4 * 32 * 32 + 128
    with torch.no_grad():
        ll = ExactCircuit(model).log_likelihood(np.arange(4).reshape(4, 1)).numpy()
    assert math.isclose(np.exp(ll).sum(), 1.0, rel_tol=1e-9)


def test_case_selection():
    names = [c.name for c in race_cases.select_cases("hclt,rat64,bsp010,hclt32")]
    assert names == ["hclt32", "hclt128", "hclt512", "rat64", "bsp010"]
    assert len(race_cases.select_cases("all")) == 12
    with pytest.raises(SystemExit, match="unknown case 'nope'"):
        race_cases.select_cases("pd32,nope")


def test_structure_cases_match_pyjuice_edge_counts():
    """Our pd32 / rat64 / hmm256 circuits have exactly PyJuice 2.6.3's edge
    counts (study notes and REFERENCES.md: 251,712 / 4,595,200 / 2,048,000)."""
    cases = race_cases.all_cases()
    assert race_cases.work_of(cases["pd32"].build()).edges == 251_712
    assert race_cases.work_of(cases["hmm256"].build()).edges == 2_048_000
    assert race_cases.work_of(cases["rat64"].build()).edges == 4_595_200


def test_shipped_hclt_tree_is_a_spanning_tree():
    import networkx as nx
    edges = np.load(race_cases.TREE_FILE)
    tree = nx.Graph(edges.astype(np.int64).tolist())
    assert tree.number_of_nodes() == 784 and nx.is_tree(tree)


def test_arguments():
    args = race.parse_args([])
    assert args.batches == 117 and args.libs == {"pcc", "pyjuice"}
    quick = race.parse_args(["--quick", "--libs", "pcc"])
    assert quick.batches == 8 and quick.libs == {"pcc"}


def _fake_results():
    base = dict(edges=10_000_000, sum_edges=9_000_000, nodes=100_000, params=10_000_000,
                kept_fraction=None, notes=[], description="d")
    a = dict(base, name="a", pcc={"epoch_s": 1.0, "forward_s": 0.2, "peak_gb": 1.0,
                                   "compile_cold_s": 3.0, "compile_warm_s": 0.5},
             pyjuice={"epoch_s": 2.0, "forward_s": 0.4, "peak_gb": 2.0, "compile_s": 1.0},
             agreement={"triton_vs_pyjuice_fp32": {"max_abs": 1e-5}})
    b = dict(base, name="b", pcc={"epoch_s": 4.0, "forward_s": 0.8, "peak_gb": 4.0},
             pyjuice={"epoch_s": 2.0, "forward_s": 0.4, "peak_gb": 2.0},
             errors={"pcc_torch": "RuntimeError: x"})
    c = dict(base, name="c", pcc={}, pyjuice={"epoch_s": 1.0})   # pcc failed: no ratio
    return [a, b, c]


def test_report_ratios_geomean_roofline(tmp_path):
    env = {"gpu": "NVIDIA H100 80GB HBM3", "date": "2026-11-23 19:00 UTC", "torch": "2.11",
           "triton": "3.6.0", "pyjuice": "2.6.3", "pccompiler": "0.1.0", "python": "3.12",
           "command": "python bench/race.py", "batch": 512, "batches": 117, "step_size": 0.1,
           "pseudocount": 0.1, "repeats": 1, "pyjuice_cudagraph": True}
    results = _fake_results()
    paths = race_report.write_reports(env, results, tmp_path / "res", "", str(tmp_path / "out"))
    assert [p.name for p in paths] == ["race-nvidia-h100-80gb-hbm3-2026-11-23.md",
                                       "race-nvidia-h100-80gb-hbm3-2026-11-23.json"] * 2
    data = json.loads(paths[1].read_text())
    assert data["cases"][0]["ratios"]["epoch"] == 0.5
    assert data["cases"][1]["ratios"]["epoch"] == 2.0
    assert data["cases"][2]["ratios"]["epoch"] is None
    assert data["geomean"]["epoch"] == pytest.approx(1.0) and data["geomean"]["epoch_cases"] == 2
    roof = data["cases"][0]["roofline"]["pcc_train"]
    flops = 3 * 2.0 * 10_000_000 * 512 * 117            # per epoch of 1.0 s
    assert roof["tflops"] == pytest.approx(flops / 1e12)
    assert roof["pct_tf32"] == pytest.approx(100 * flops / 356e12)
    md = paths[0].read_text()
    assert "| a | 10.00M | 3.00 / 0.50 / 1.00 | 1.000 / 2.000 (0.50)" in md
    assert "**error [pcc_torch]** RuntimeError: x" in md
    assert (tmp_path / "out" / paths[0].name).read_text() == md


def test_report_into_out_itself(tmp_path):
    """--out-dir $OUT: the copy to $OUT is skipped, not a SameFileError."""
    env = {"gpu": "G", "date": "2026-11-23 19:00 UTC", "torch": "t", "triton": "t",
           "pyjuice": "p", "pccompiler": "c", "python": "3", "command": "c", "batch": 512,
           "batches": 117, "step_size": 0.1, "pseudocount": 0.1, "repeats": 1,
           "pyjuice_cudagraph": True}
    paths = race_report.write_reports(env, _fake_results(), tmp_path, "-x", str(tmp_path))
    assert [p.name for p in paths] == ["race-g-2026-11-23-x.md", "race-g-2026-11-23-x.json"]
