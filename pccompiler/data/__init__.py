"""Data loaders: DEBD binary sets, MNIST IDX files, character-level text.

    from pccompiler.data import load_debd, load_mnist, load_text, read_data_file
    x = load_debd("nltcs", "train")           # uint8 [16181, 16]; shipped with the package
    images = load_mnist("test")               # uint8 [10000, 784] (train images not shipped)
    seqs, vocab = load_text(seq_length=32)    # tinyshakespeare windows

Files are searched in `root`, then $PCC_DATA_DIR, then `../shared/data`
beside the repository, then (nltcs) this package. Errors are DataError.
"""

from pccompiler.data.debd import DEBD_NUM_VARS, SPLITS, debd_path, load_debd
from pccompiler.data.files import read_data_file, sha256_of_content, verify_checksum
from pccompiler.data.locate import ENV_VAR, search_dirs
from pccompiler.data.mnist import load_mnist
from pccompiler.data.text import load_text

__all__ = [
    "DEBD_NUM_VARS", "SPLITS", "ENV_VAR", "debd_path", "load_debd", "load_mnist", "load_text",
    "read_data_file", "search_dirs", "sha256_of_content", "verify_checksum",
]
