"""Data loaders: DEBD files (shared and shipped), parsing errors with line
numbers, checksums, MNIST IDX files and character-level text."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pccompiler.data import (load_debd, load_mnist, load_text, read_data_file, search_dirs,
                             verify_checksum)
from pccompiler.data.locate import PACKAGE_DIR, SHARED_DATA_DIR
from pccompiler.errors import DataError

SHARED_DEBD = SHARED_DATA_DIR / "debd"
SHARED_MNIST = SHARED_DATA_DIR / "mnist"
needs_shared_debd = pytest.mark.skipif(not SHARED_DEBD.is_dir(), reason="no ../shared/data/debd")
needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="no ../shared/data/mnist")


def _reference_table(path: Path) -> np.ndarray:
    """An independent parse: Python's split, one line at a time."""
    with gzip.open(path, "rt") as f:
        rows = [[int(t) for t in line.split(",")] for line in f if line.strip()]
    return np.array(rows, dtype=np.uint8)


@pytest.mark.parametrize("split,rows", [("train", 16181), ("valid", 2157), ("test", 3236)])
def test_shipped_nltcs_matches_an_independent_parse(split, rows):
    data = load_debd("nltcs", split, root=PACKAGE_DIR, verify=True)
    assert data.dtype == np.uint8 and data.shape == (rows, 16)
    np.testing.assert_array_equal(data, _reference_table(PACKAGE_DIR / f"nltcs.{split}.data.gz"))


def test_default_search_finds_nltcs_and_prefers_the_env_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PCC_DATA_DIR", raising=False)
    assert load_debd("nltcs", "valid").shape == (2157, 16)
    (tmp_path / "nltcs.valid.data").write_text("0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,1\n")
    monkeypatch.setenv("PCC_DATA_DIR", str(tmp_path))
    assert search_dirs("debd")[0] == tmp_path
    np.testing.assert_array_equal(load_debd("nltcs", "valid"), [[0, 1] + [0] * 13 + [1]])


@needs_shared_debd
def test_shared_set_with_many_columns_and_checksum():
    data = load_debd("dna", "valid", verify=True)
    assert data.shape == (400, 180)
    np.testing.assert_array_equal(data, _reference_table(SHARED_DEBD / "dna.valid.data.gz"))


def test_missing_file_lists_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("PCC_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_debd("no_such_set", "train")
    message = str(err.value)
    assert "no_such_set.train.data.gz not found" in message
    assert str(tmp_path / "no_such_set.train.data.gz") in message
    assert str(PACKAGE_DIR / "no_such_set.train.data") in message
    assert "known DEBD sets" in message and "nltcs" in message
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_debd("nltcs", "dev")


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.data"
    path.write_text("0,1,1\n1,1,0\n\n0,1\n1,0,0\n")
    with pytest.raises(DataError) as err:
        read_data_file(path)
    assert str(path) in str(err.value)
    assert "line 4: 2 columns, expected 3" in str(err.value)


def test_bad_token_names_line_and_column(tmp_path):
    path = tmp_path / "bad.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("0,1,1\n1,x,0\n")
    with pytest.raises(DataError, match=r"line 2, column 2: 'x' is not a non-negative integer"):
        read_data_file(path)
    path2 = tmp_path / "neg.csv"
    path2.write_text("3,4\n5,-1\n")
    with pytest.raises(DataError, match=r"line 2, column 2: '-1'"):
        read_data_file(path2)


def test_value_above_uint8_is_refused(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("1,2\n3,256\n")
    with pytest.raises(DataError, match=r"line 2, column 2: value 256 exceeds 255"):
        read_data_file(path)


def test_multi_digit_values_crlf_and_trailing_blank_lines(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_bytes(b"10,2,255\r\n0, 7,3\r\n\r\n\n")
    np.testing.assert_array_equal(read_data_file(path), [[10, 2, 255], [0, 7, 3]])


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.data"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="holds no rows"):
        read_data_file(empty)
    with pytest.raises(DataError, match="no such data file"):
        read_data_file(tmp_path / "absent.data")


def test_checksum_mismatch_and_unlisted_file(tmp_path):
    path = tmp_path / "a.train.data"
    path.write_text("0,1\n")
    good = hashlib.sha256(b"0,1\n").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{good}  a.train.data\n{'0' * 64}  b.train.data\n")
    assert verify_checksum(path) is True
    other = tmp_path / "b.train.data"
    other.write_text("1,1\n")
    with pytest.raises(DataError, match="does not match"):
        verify_checksum(other)
    unlisted = tmp_path / "c.train.data"
    unlisted.write_text("1\n")
    assert verify_checksum(unlisted) is False


@needs_mnist
def test_mnist_test_images_and_labels():
    images = load_mnist("test")
    assert images.shape == (10000, 784) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert load_mnist("test", flatten=False).shape == (10000, 28, 28)
    labels = load_mnist("test", labels=True)
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert load_mnist("train", labels=True).shape == (60000,)


def test_mnist_train_images_missing_is_explained(tmp_path):
    # The shared folder may or may not hold the train images: ask an empty one.
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz not found.*split='test'"):
        load_mnist("train", root=tmp_path)


@pytest.mark.skipif(not (SHARED_DATA_DIR / "mnist" / "train-images-idx3-ubyte.gz").exists(),
                    reason="no MNIST train images in the shared folder")
def test_mnist_train_images():
    images = load_mnist("train")
    assert images.shape == (60000, 784) and images.dtype == np.uint8
    assert abs(images.mean() / 255 - 0.1307) < 1e-3


def test_mnist_wrong_magic(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(np.array([2049, 1, 1, 1], ">i4").tobytes())
    with pytest.raises(DataError, match="IDX magic 2049"):
        load_mnist("test", root=tmp_path)


def test_text_windows_and_vocabulary(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcabcab")
    seqs, vocab = load_text(path, seq_length=3)
    assert vocab == "abc"
    np.testing.assert_array_equal(seqs, [[0, 1, 2], [0, 1, 2]])
    seqs, _ = load_text(path, seq_length=3, stride=2)
    np.testing.assert_array_equal(seqs[:, 0], [0, 2, 1])
    with pytest.raises(DataError, match="byte offset 2: character 'c' is not in the vocabulary"):
        load_text(path, seq_length=2, vocab="ab")


@pytest.mark.skipif(not (SHARED_DATA_DIR / "text").is_dir(), reason="no shared text")
def test_tinyshakespeare_default():
    seqs, vocab = load_text(seq_length=32)
    assert len(vocab) == 65 and seqs.shape == (1115394 // 32, 32)
    assert seqs.max() == 64
