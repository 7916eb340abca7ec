"""Where data files are looked for, in one place.

Order: an explicit `root` argument; else the environment variable
PCC_DATA_DIR (the folder itself, then its `<kind>` subfolder); else the shared data folder beside the repository
(`<repo>/../shared/data/<kind>`) when it exists; else the copy shipped
inside this package (nltcs only). A missing file is reported with every
place that was tried.
"""

from __future__ import annotations

import os
from pathlib import Path

from pccompiler.errors import DataError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parents[1]
SHARED_DATA_DIR = REPO_DIR.parent / "shared" / "data"
ENV_VAR = "PCC_DATA_DIR"


def search_dirs(kind: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for data of `kind` ("debd", "mnist", "text")."""
    if root is not None:
        return [Path(root)]
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env), Path(env) / kind]
    shared = SHARED_DATA_DIR / kind
    if shared.is_dir():
        dirs.append(shared)
    if kind == "debd":
        dirs.append(PACKAGE_DIR)
    return dirs


def find_file(kind: str, names: list[str], root: str | os.PathLike | None = None,
              hint: str = "") -> Path:
    """The first existing `<dir>/<name>` over search_dirs x names."""
    tried = []
    for folder in search_dirs(kind, root):
        for name in names:
            path = folder / name
            if path.is_file():
                return path
            tried.append(str(path))
    message = f"{names[0]} not found; looked in: " + ", ".join(tried)
    if root is None:
        message += f" (set {ENV_VAR} or pass root= to look elsewhere)"
    raise DataError(message + (f". {hint}" if hint else ""))
