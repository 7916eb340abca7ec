"""Bad data at every entry point (builder, log_prob / em_step, data loaders,
`pcc train`, `pcc eval`): one clear PCError naming what and where (row and
column), no training step applied, no file changed."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pccompiler as pc
from pccompiler import ir
from pccompiler.cli.main import main as pcc
from pccompiler.data import load_debd, read_data_file
from pccompiler.errors import BuildError, DataError, PCError
from pccompiler.ir import pcir
from pccompiler.train import check_data, load_data
from tests import factories as F


@pytest.fixture(scope="module")
def circuit():
    """4 categorical variables with 3 categories."""
    return pc.compile(F.small_dense_model(seed=0), backend="torch")


@pytest.fixture(scope="module")
def gaussian():
    return pc.compile(F.build_model(0, dist=pcir.GAUSSIAN_DIST), backend="torch")


# ---------------------------------------------------------------- builder
@pytest.mark.parametrize("make,match", [
    (lambda: pc.inputs(var=-1, num_nodes=2, dist=pc.Categorical(num_cats=2)), "var"),
    (lambda: pc.inputs(var=0, num_nodes=0, dist=pc.Categorical(num_cats=2)), "num_nodes"),
    (lambda: pc.inputs(var=0, num_nodes=2, dist=pc.Categorical(num_cats=0)), "num_cats"),
    (lambda: pc.inputs(var=0, num_nodes=2, dist=pc.Categorical(
        num_cats=2, params=np.array([[0.5, np.nan], [0.5, 0.5]]))), "NaN|finite"),
    (lambda: pc.inputs(var=0, num_nodes=2, dist=pc.Categorical(
        num_cats=2, params=np.ones((3, 2)) / 2)), "shape"),
    (lambda: pc.inputs(var=0, num_nodes=2, dist=pc.Bernoulli(params=np.array([0.5, 1.5]))), r"\[0, 1\]"),
    (lambda: pc.inputs(var=0, num_nodes=2, dist=pc.Gaussian(
        mean=np.zeros(2), std=np.array([1.0, -1.0]))), "std"),
    (lambda: pc.inputs(var=0, num_nodes=2, dist=pc.Categorical(
        num_cats=2, params=np.array([["a", "b"], ["c", "d"]]))), "float|dtype"),
])
def test_builder_rejects_bad_values(make, match):
    with pytest.raises(BuildError, match=match):
        make()


def test_builder_rejects_bad_weights_and_index():
    x = pc.inputs(var=0, num_nodes=2, dist=pc.Categorical(num_cats=2))
    y = pc.inputs(var=1, num_nodes=2, dist=pc.Categorical(num_cats=2))
    with pytest.raises(BuildError, match=r"index\[1, 0\]"):
        pc.multiply(x, y, index=np.array([[0, 0], [5, 1]]))
    p = pc.multiply(x, y)
    with pytest.raises(BuildError, match="NaN|finite"):
        pc.summate(p, num_nodes=1, weights=np.array([[np.nan, 1.0]]))
    with pytest.raises(BuildError, match="shape"):
        pc.summate(p, num_nodes=1, weights=np.ones((1, 3)) / 3)
    with pytest.raises(BuildError, match="non-negative"):
        pc.summate(p, num_nodes=1, weights=np.array([[-0.5, 1.5]]))


@pytest.mark.parametrize("bad", ["nan", "negative", "float", "empty", "1d"])
def test_hclt_rejects_bad_training_data(bad):
    data = load_debd("nltcs", "train")[:200].astype(np.float64)
    if bad == "nan":
        data[7, 3] = np.nan
    elif bad == "negative":
        data[7, 3] = -1
    elif bad == "float":
        data[7, 3] = 0.5
    elif bad == "empty":
        data = data[:0]
    else:
        data = data[0]
    with pytest.raises(PCError):
        pc.hclt(data, num_latents=2, num_cats=2, seed=0)


# ---------------------------------------------------------------- log_prob / em_step
BAD_BATCHES = {
    "empty": (np.zeros((0, 4), np.int64), "empty|no rows|0"),
    "1d": (np.zeros(4, np.int64), r"shape \(4,\)"),
    "3d": (np.zeros((1, 1, 4), np.int64), "shape"),
    "too-few-columns": (np.zeros((2, 3), np.int64), r"expected \[batch, 4\]"),
    "too-many-columns": (np.zeros((2, 5), np.int64), r"expected \[batch, 4\]"),
    "category": (np.array([[0, 1, 2, 0], [0, 3, 0, 0]]), r"row 1, column 1"),
    "negative": (np.array([[0, 0, 0, -1]]), r"row 0, column 3"),
    "nan": (np.array([[0, 0, np.nan, 0.0]]), r"row 0, column 2"),
    "inf": (np.array([[0, 0, 0, np.inf]]), r"row 0, column 3: .*(inf|finite)"),
    "fraction": (np.array([[0.0, 1.0, 2.0, 0.5]]), r"row 0, column 3"),
    "huge": (np.array([[2 ** 62, 0, 0, 0]]), r"row 0, column 0"),
    "strings": (np.array([["0", "1", "2", "0"]]), "dtype"),
    "objects": (np.array([[None, 1, 2, 0]], dtype=object), "dtype"),
    "complex": (np.zeros((1, 4), complex), "dtype"),
}


@pytest.mark.parametrize("name", sorted(BAD_BATCHES))
def test_log_prob_rejects_bad_batches_with_row_and_column(circuit, name):
    x, match = BAD_BATCHES[name]
    with pytest.raises(DataError, match=match):
        circuit.log_prob(x)


@pytest.mark.parametrize("name", ["category", "nan", "inf", "empty", "strings"])
def test_em_step_with_bad_batch_applies_no_step(circuit, name):
    x, _ = BAD_BATCHES[name]
    sums, inputs = circuit.sum_params.detach().clone(), circuit.input_params.detach().clone()
    with pytest.raises(DataError):
        circuit.em_step(x, step_size=1.0, pseudocount=0.1)
    assert torch.equal(sums, circuit.sum_params) and torch.equal(inputs, circuit.input_params)
    assert float(circuit.engine.sum_param_flows.abs().sum()) == 0.0


def test_missing_mask_of_the_wrong_shape(circuit):
    with pytest.raises(DataError, match="missing mask"):
        circuit.log_prob(np.zeros((2, 4), np.int64), missing=np.zeros((2, 3), bool))


@pytest.mark.parametrize("value,match", [(np.nan, "row 1, column 2"), (np.inf, "row 1, column 2"),
                                         (-np.inf, "row 1, column 2")])
def test_gaussian_log_prob_rejects_non_finite(gaussian, value, match):
    x = np.zeros((3, 4))
    x[1, 2] = value
    with pytest.raises(DataError, match=match):
        gaussian.log_prob(x)
    missing = np.zeros((3, 4), bool)
    missing[1, 2] = True                     # marked missing, the value is ignored
    assert torch.isfinite(gaussian.log_prob(x, missing)).all()


# ---------------------------------------------------------------- check_data / loaders
def test_check_data_names_row_and_column():
    model = F.small_dense_model()
    x = np.zeros((5, 4))
    x[3, 2] = 7
    with pytest.raises(DataError, match=r"row 3, column 2: value 7 is not a category"):
        check_data(x, model)
    with pytest.raises(DataError, match="3 columns; the model has 4 variables"):
        check_data(np.zeros((5, 3)), model)
    with pytest.raises(DataError, match="non-empty"):
        check_data(np.zeros((0, 4)), model)
    with pytest.raises(DataError, match="not numeric"):
        check_data(np.array([["a"] * 4]), model)


@pytest.mark.parametrize("content,match", [
    (b"0,1,2,0\n0,1\n", "line 2: 2 columns, expected 4"),
    (b"0,1,2,0\n0,1,x,0\n", "line 2, column 3: 'x' is not a non-negative integer"),
    (b"0,1,2,0\n0,1,-1,0\n", "line 2, column 3: '-1'"),
    (b"0,1,2,0\n0,1,2.5,0\n", "line 2, column 3: '2.5'"),
    (b"0,1,2,0\n0,1,,0\n", "line 2, column 3"),
    (b"0,1,2,0\n0,1,999,0\n", "line 2, column 3: value 999 exceeds 255"),
    (b"", "holds no rows"),
    (b"\n\n", "holds no rows"),
    (b"0,1,2,0\n\xff\xfe,0,0,0\n", "line 2, column 1"),
])
def test_read_data_file_errors_name_line_and_column(tmp_path, content, match):
    path = tmp_path / "bad.data"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_data_file(path)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    good = gzip.compress(b"0,1\n1,0\n" * 100)
    (tmp_path / "bad.data.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="bad.data.gz"):
        read_data_file(tmp_path / "bad.data.gz")
    (tmp_path / "junk.data.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="junk.data.gz"):
        read_data_file(tmp_path / "junk.data.gz")


def test_load_data_for_real_variables_names_line(tmp_path):
    model = F.build_model(0, dist=pcir.GAUSSIAN_DIST)
    (tmp_path / "g.csv").write_text("0.5,1,2,3\n0.1,nan,2,3\n")
    with pytest.raises(DataError, match="line 2, column 2"):
        load_data(str(tmp_path / "g.csv"), model)
    (tmp_path / "g2.csv").write_text("0.5,1,2,3\n0.1,abc,2,3\n")
    with pytest.raises(DataError, match="line 2"):
        load_data(str(tmp_path / "g2.csv"), model)
    (tmp_path / "g3.csv").write_text("0.5,1,2,3\n0.1,2,3\n")
    with pytest.raises(DataError, match="line 2: 3 columns"):
        load_data(str(tmp_path / "g3.csv"), model)


# ---------------------------------------------------------------- pcc train / eval
def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("baddata")
    ir.save(F.small_dense_model(seed=5), d / "m.pcir")
    assert pcc(["compile", str(d / "m.pcir"), "--backend", "torch", "--no-cache",
                "-o", str(d / "m.pcc")]) == 0
    rng = np.random.default_rng(0)
    good = rng.integers(0, 3, (300, 4))
    np.savetxt(d / "good.data", good, fmt="%d", delimiter=",")
    bad = good.copy()
    bad[120, 2] = 3                                   # out of range for 3 categories
    np.savetxt(d / "cat.data", bad, fmt="%d", delimiter=",")
    np.savetxt(d / "cols.data", good[:, :3], fmt="%d", delimiter=",")
    text = (d / "good.data").read_text().splitlines()
    text[200] = text[200].replace("0", "x", 1) if "0" in text[200] else "x,0,0,0"
    (d / "token.data").write_text("\n".join(text) + "\n")
    (d / "empty.data").write_text("")
    return d


@pytest.mark.parametrize("which,flag,match", [
    ("cat", "--data", "line 121, column 3"),
    ("cols", "--data", "3 columns; the model has 4 variables"),
    ("token", "--data", "line 201"),
    ("empty", "--data", "no rows"),
    ("cat", "--valid", "line 121, column 3"),
    ("cat", "--test", "line 121, column 3"),
    ("missing-file", "--data", "no such"),
])
def test_pcc_train_bad_data_changes_nothing(cli_files, capsys, which, flag, match):
    d = cli_files
    out = d / "out.pcc"
    out.write_bytes(b"previous output")
    before_in, before_out = _sha(d / "m.pcc"), _sha(out)
    args = ["train", str(d / "m.pcc"), "--data", str(d / "good.data"), "--epochs", "2",
            "--quiet", "-o", str(out)]
    bad_path = str(d / f"{which}.data")
    if flag == "--data":
        args[args.index("--data") + 1] = bad_path
    else:
        args += [flag, bad_path]
    assert pcc(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("pcc train: error: ") and err.count("\n") == 1, err
    assert bad_path in err and (match in err), err
    assert _sha(d / "m.pcc") == before_in and _sha(out) == before_out
    assert "epoch" not in capsys.readouterr().out


def test_pcc_train_bad_numbers_are_refused(cli_files, capsys):
    d = cli_files
    for extra in (["--epochs", "0"], ["--batch-size", "0"], ["--step-size", "nan"],
                  ["--step-size", "-1"], ["--pseudocount", "-1"]):
        args = ["train", str(d / "m.pcc"), "--data", str(d / "good.data"), "--quiet",
                "-o", str(d / "never.pcc")] + extra
        assert pcc(args) == 1, extra
        assert "error" in capsys.readouterr().err
        assert not (d / "never.pcc").exists()


@pytest.mark.parametrize("which,match", [("cat", "line 121, column 3"), ("empty", "no rows"),
                                         ("cols", "3 columns")])
def test_pcc_eval_bad_data(cli_files, capsys, which, match):
    d = cli_files
    assert pcc(["eval", str(d / "m.pcc"), "--data", str(d / f"{which}.data")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pcc eval: error: ") and match in err, err


def test_flipped_bytes_in_gzip_data_are_data_errors(tmp_path):
    """Every single-byte corruption of a gzipped data file ends in DataError
    (corrupt deflate data raised zlib.error before: a crash, not an error)."""
    good = gzip.compress(("0,1,2,0\n" * 3000).encode())
    path = tmp_path / "x.data.gz"
    outcomes = set()
    for i in range(10, len(good), 3):
        data = bytearray(good)
        data[i] ^= 0x55
        path.write_bytes(bytes(data))
        try:
            read_data_file(path)
            outcomes.add("ok")
        except DataError:
            outcomes.add("DataError")
    assert "DataError" in outcomes and outcomes <= {"ok", "DataError"}


@settings(max_examples=200, deadline=1000,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="0123456789,\n\r -x.", max_size=200))
def test_read_data_file_on_arbitrary_text(tmp_path, text):
    path = tmp_path / "h.data"
    path.write_text(text)
    try:
        table = read_data_file(path)
    except DataError:
        return
    assert table.ndim == 2 and table.shape[0] >= 1 and table.dtype == np.uint8


@pytest.mark.parametrize("dims", [(2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1), (4, 1 << 16, 1 << 16),
                                  (-1, 28, 28), (1, 28, 28)])
def test_mnist_header_claims_are_checked_against_bytes(tmp_path, dims):
    from pccompiler.data import load_mnist
    header = np.array([2051, *dims], dtype=">i4").tobytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + bytes(100))
    with pytest.raises(DataError, match="data bytes, the header promises"):
        load_mnist("test", root=tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    good = gzip.compress(header + bytes(784 * 2))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(good[:-12] + bytes(12))
    with pytest.raises(DataError):
        load_mnist("test", root=tmp_path)
