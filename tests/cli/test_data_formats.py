"""Any data a user has (#20 point 2), through `pcc` as a subprocess:
categories above 255 (an HMM over 1,000 tokens), real-valued columns for
Gaussian leaves, --header, --delimiter, and --dataset on train and eval
(mnist included); errors are one line, name the file, line and column, and
leave no output behind."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from pccompiler.data.files import DataFormat, read_data_file, read_table
from pccompiler.data.locate import SHARED_DATA_DIR
from pccompiler.errors import DataError

ROOT = pathlib.Path(__file__).resolve().parents[2]
PCC = ROOT / ".venv" / "bin" / "pcc"
NLTCS_TEST = ROOT / "pccompiler" / "data" / "nltcs.test.data.gz"
needs_mnist = pytest.mark.skipif(not (SHARED_DATA_DIR / "mnist").is_dir(),
                                 reason="no ../shared/data/mnist")


def pcc(*args, cwd=None) -> subprocess.CompletedProcess:
    exe = [str(PCC)] if PCC.exists() else [sys.executable, "-m", "pccompiler.cli.main"]
    return subprocess.run([*exe, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def ok(*args, cwd=None) -> str:
    done = pcc(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(*args, match: str, cwd=None) -> str:
    """The command exits 1 with exactly one stderr line holding `match`."""
    done = pcc(*args, cwd=cwd)
    err = done.stderr
    assert done.returncode == 1, (done.stdout, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


def leftovers(folder: pathlib.Path, before: set) -> set:
    """Files that appeared in `folder` (temp files included)."""
    return {p.name for p in folder.iterdir()} - before


# ---------------------------------------------------------------- the reader
def test_reader_header_delimiters_and_wide_categories(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;c\n1;2;3\n\n 4 ; 5;1000\n")
    table, lines = read_table(path, 1000, fmt=DataFormat(";", header=True))
    assert table.dtype == np.uint16 and table.tolist() == [[1, 2, 3], [4, 5, 1000]]
    assert lines.tolist() == [2, 4]
    path.write_text("  x   y\tz \n1\t 2   3\n\n4 5 6   \n")
    table = read_data_file(path, fmt=DataFormat("space", header=True))
    assert table.tolist() == [[1, 2, 3], [4, 5, 6]]
    path.write_text("1\t2\n3\t70000\n")
    assert read_data_file(path, 2 ** 20, fmt=DataFormat("tab")).dtype == np.uint32
    path.write_text("0.5,-1e3\n2,7\n")
    assert read_data_file(path, real=True).tolist() == [[0.5, -1000.0], [2.0, 7.0]]


@pytest.mark.parametrize("content, fmt, real, match", [
    ("a,b,c\n1,2\n", DataFormat(header=True), False,
     "line 2: 2 columns, expected 3 (the header, line 1)"),
    ("\na,b\n1,2,3\n", DataFormat(header=True), False,
     "line 3: 3 columns, expected 2 (the header, line 2)"),
    ("a,b\n\n", DataFormat(header=True), False, "no rows below the header"),
    ("h;i\n1;2\n3;1001\n", DataFormat(";", header=True), False, "line 3, column 2: value 1001 "
                                                             "exceeds 1000"),
    ("0.5,1\n0.1,abc\n", DataFormat(), True, "line 2, column 2: 'abc' is not a number"),
    ("0.5 1\n\n0.1   \n", DataFormat(" "), True, "line 3: 1 columns, expected 2"),
])
def test_reader_errors_name_line_and_column(tmp_path, content, fmt, real, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match.replace("(", r"\(").replace(")", r"\)")):
        read_data_file(path, 1000, fmt=fmt, real=real)


def test_large_integer_table_is_parsed_exactly(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 10 ** 6, (500, 7))
    values[0, 0] = 10 ** 17 + 3                     # 18 digits: the fast path's limit
    np.savetxt(tmp_path / "w.csv", values, fmt="%d", delimiter=",")
    got = read_data_file(tmp_path / "w.csv", np.iinfo(np.int64).max)
    np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("delimiter", ["ab", "1", "-", "."])
def test_bad_delimiter_is_refused(delimiter):
    with pytest.raises(DataError, match="delimiter"):
        DataFormat(delimiter)


# ---------------------------------------------------------------- through pcc
def test_hmm_over_1000_tokens_trains_from_a_token_file(tmp_path):
    """The reader took at most 255 before; the limit is now the model's."""
    ok("build", "hmm", "--length", "6", "--latents", "4", "--emits", "1000", "-o",
       tmp_path / "hmm.pcir")
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 1000, (64, 6))
    tokens[3, 2] = 999
    np.savetxt(tmp_path / "tokens.csv", tokens, fmt="%d", delimiter=";",
               header="t0;t1;t2;t3;t4;t5", comments="")
    ok("train", tmp_path / "hmm.pcir", "--data", tmp_path / "tokens.csv", "--header",
       "--delimiter", ";", "--epochs", "1", "--batch-size", "32", "--quiet", "-o",
       tmp_path / "hmm.pcc")
    out = ok("eval", tmp_path / "hmm.pcc", "--data", tmp_path / "tokens.csv", "--header",
             "--delimiter", ";")
    assert "64 samples" in out
    tokens[40, 5] = 1000                            # one past the last category
    np.savetxt(tmp_path / "bad.csv", tokens, fmt="%d", delimiter=";",
               header="t0;t1;t2;t3;t4;t5", comments="")
    before = {p.name for p in tmp_path.iterdir()}
    fails("train", tmp_path / "hmm.pcir", "--data", tmp_path / "bad.csv", "--header",
          "--delimiter", ";", "--quiet", "-o", tmp_path / "never.pcc",
          match="line 42, column 6: value 1000 is not a category of variable 5 (0..999)")
    assert not leftovers(tmp_path, before)


def test_gaussian_leaves_from_a_real_valued_tab_file(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 5)) * [1, 2, 3, 4, 5] + [0, 10, -5, 0.5, 100]
    data = tmp_path / "real.tsv"
    np.savetxt(data, x, delimiter="\t", header="\t".join("abcde"), comments="")
    ok("build", "hclt", "--data", data, "--header", "--delimiter", "tab", "--input-dist",
       "gaussian", "--mi-estimator", "pyjuice", "--latents", "4", "-o", tmp_path / "g.pcir")
    ok("train", tmp_path / "g.pcir", "--data", data, "--header", "--delimiter", "tab",
       "--epochs", "2", "--quiet", "-o", tmp_path / "g.pcc")
    out = ok("eval", tmp_path / "g.pcc", "--data", data, "--header", "--delimiter", "tab")
    assert "200 samples" in out
    lines = data.read_text().splitlines()
    lines[7] = lines[7].replace("\t", "\tx", 1)
    (tmp_path / "bad.tsv").write_text("\n".join(lines) + "\n")
    fails("eval", tmp_path / "g.pcc", "--data", tmp_path / "bad.tsv", "--header",
          "--delimiter", "tab", match="line 8, column 2: 'x")


def test_whitespace_delimiter_and_header_mismatch_through_pcc(tmp_path):
    rows = np.loadtxt(NLTCS_TEST, delimiter=",", dtype=np.int64)[:50]
    text = "\n".join("  ".join(map(str, r)) + " " for r in rows)
    (tmp_path / "ws.txt").write_text("   ".join(f"v{i}" for i in range(16)) + "\n" + text + "\n")
    ok("build", "hclt", "--data", tmp_path / "ws.txt", "--header", "--delimiter", "space",
       "--latents", "2", "-o", tmp_path / "m.pcir")
    spaced = ok("eval", tmp_path / "m.pcir", "--data", tmp_path / "ws.txt", "--header",
                "--delimiter", "space")
    np.savetxt(tmp_path / "c.csv", rows, fmt="%d", delimiter=",")
    commas = ok("eval", tmp_path / "m.pcir", "--data", tmp_path / "c.csv")
    assert spaced.split(":")[1] == commas.split(":")[1]         # same LL
    (tmp_path / "short.csv").write_text("a,b,c\n" + "0," * 15 + "1\n")
    fails("eval", tmp_path / "m.pcir", "--data", tmp_path / "short.csv", "--header",
          match="line 2: 16 columns, expected 3 (the header, line 1)")
    fails("eval", tmp_path / "m.pcir", "--data", tmp_path / "c.csv", "--delimiter", "ab",
          match="--delimiter")


def test_dataset_on_train_and_eval(tmp_path):
    ok("build", "hclt", "--dataset", "nltcs", "--latents", "2", "-o", tmp_path / "m.pcir")
    out = ok("train", tmp_path / "m.pcir", "--dataset", "nltcs", "--epochs", "1", "--quiet",
             "--batch-size", "4096", "-o", tmp_path / "m.pcc")
    assert "valid LL" in out and "test LL" in out           # the set's valid and test splits
    named = ok("eval", tmp_path / "m.pcc", "--dataset", "nltcs")
    assert named.startswith("nltcs (test): 3236 samples")
    by_file = ok("eval", tmp_path / "m.pcc", "--data", NLTCS_TEST)
    assert named.split(":")[1] == by_file.split(":")[1]
    fails("eval", tmp_path / "m.pcc", "--dataset", "no_such_set", match="no_such_set")


@needs_mnist
def test_dataset_mnist(tmp_path):
    """784 variables x 256 categories: eval on the 10k test images through
    pcc; train's splits checked in-process (training on 60k images is slow)."""
    import pccompiler as pc
    from pccompiler.train import load_sets
    ok("build", "rat-spn", "--num-vars", "784", "--latents", "2", "--depth", "1",
       "--repetitions", "1", "-o", tmp_path / "r.pcir")
    out = ok("eval", tmp_path / "r.pcir", "--dataset", "mnist", "--batch-size", "5000")
    assert out.startswith("mnist (test): 10000 samples")
    model = pc.ir.load(str(tmp_path / "r.pcir"))
    train, valid, test = load_sets(model, dataset="mnist")
    assert train.shape == (60000, 784) and valid is None and test.shape == (10000, 784)
    fails("eval", tmp_path / "r.pcir", "--dataset", "mnist", "--split", "valid",
          match="unknown MNIST split 'valid'")


@pytest.mark.parametrize("command", [["build", "hclt"], ["build"], ["train"], ["eval"]])
def test_help_says_where_the_data_lives(command):
    out = ok(*command, "--help")
    assert "PCC_DATA_DIR" in out and "shared/data" in out and "--dataset" in out
    if command != ["build"]:
        assert "--header" in out and "--delimiter" in out


@pytest.mark.parametrize("content, fmt, real, hint", [
    ("0 1 1\n1 0 1\n", DataFormat(), False, "separated by space: is the file space-separated? "
                                            "(pcc: --delimiter space; Python: DataFormat("
                                            "delimiter=' '))"),
    ("0\t1\n1\t0\n", DataFormat(";"), False, "separated by tab"),
    ("0.5;1\n0.1;2\n", DataFormat(), True, "separated by ';': is the file ';'-separated? "
                                           "(pcc: --delimiter ;"),
    ("0,1\n1,0\n", DataFormat(" "), False, "separated by ','"),
])
def test_a_file_read_with_the_wrong_delimiter_says_which_one_it_has(tmp_path, content, fmt,
                                                                    real, hint):
    """The most common mistake with a new data file (a space-separated DEBD
    export read as comma-separated) names the delimiter the file holds."""
    path = tmp_path / "d.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=r"line 1, column 1: .*" + re.escape(hint)):
        read_data_file(path, 1000, fmt=fmt, real=real)


def test_a_bad_token_with_no_other_delimiter_gets_no_hint(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("0,1\n1,x y\n")
    with pytest.raises(DataError) as err:
        read_data_file(path, 1000)
    assert "'x y' is not a non-negative integer below 2**63" in str(err.value)
    assert "separated" not in str(err.value)
