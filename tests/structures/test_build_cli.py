"""`pcc build`: every structure writes a loadable, checked .pcir with the
edge count its counter predicts; user errors are one line, exit 1."""

from __future__ import annotations

import json

import pytest

from pccompiler import ir
from pccompiler.cli.main import main
from pccompiler.structures import edge_counts, hmm_num_edges, pd_num_edges, rat_spn_num_edges


@pytest.mark.parametrize("argv,expected_edges", [
    (["pd", "--shape", "4x4", "--split", "2", "--latents", "4", "--num-cats", "3"],
     pd_num_edges((4, 4), 4, 2)),
    (["rat-spn", "--num-vars", "9", "--latents", "4", "--depth", "2", "--repetitions", "2",
      "--num-cats", "2"], rat_spn_num_edges(9, 4, 2, 2)),
    (["hmm", "--length", "6", "--latents", "4", "--emits", "5"], hmm_num_edges(6, 4)),
])
def test_build_writes_checked_models(tmp_path, capsys, argv, expected_edges):
    out = tmp_path / "m.pcir"
    assert main(["build", *argv, "-o", str(out), "--dtype", "float64"]) == 0
    model = ir.load(out)
    ir.check(model)
    assert edge_counts(model)["edges"] == expected_edges
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{argv[0]}: {len(model.groups)} groups") and f"{expected_edges:,} edges" in line
    assert model.metadata["structure"] == argv[0]


def test_build_hclt_from_shipped_dataset_and_from_a_file(tmp_path, capsys):
    out = tmp_path / "nltcs.pcir"
    assert main(["build", "hclt", "--dataset", "nltcs", "-k", "4", "--seed", "3", "-o", str(out)]) == 0
    model = ir.load(out)
    assert len(model.variables) == 16
    assert json.loads(model.metadata["build_options"])["latents"] == 4
    data = tmp_path / "tiny.csv"
    data.write_text("0,1,2\n2,1,0\n1,1,1\n0,0,2\n")
    out2 = tmp_path / "tiny.pcir"
    assert main(["build", "hclt", "--data", str(data), "-k", "2", "-o", str(out2)]) == 0
    tiny = ir.load(out2)
    assert [v.num_cats for v in tiny.variables] == [3, 3, 3]


def test_build_reports_data_errors_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.data"
    bad.write_text("0,1\n1\n")
    assert main(["build", "hclt", "--data", str(bad), "-o", str(tmp_path / "x.pcir")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pcc build: error:") and "line 2: 1 columns, expected 2" in err
    assert "\n" not in err
    assert main(["build", "hclt", "--dataset", "nope", "-o", str(tmp_path / "x.pcir")]) == 1
    assert "nope.train.data.gz not found" in capsys.readouterr().err


def test_build_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "pcc build hclt --dataset nltcs" in text
    with pytest.raises(SystemExit):
        main(["build", "pd", "--help"])
    assert "--split" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["build", "pd", "--shape", "28xx", "--split", "7", "-o", "x"])
    assert "expected sizes like 28x28" in capsys.readouterr().err
