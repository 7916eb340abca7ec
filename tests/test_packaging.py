"""Every package folder is listed in pyproject.toml's `packages`: setuptools
installs only the listed ones, so a new subpackage missing there works in an
editable checkout and is absent from a wheel (a `pip install .` on the GPU
machine, a user's install)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"pccompiler": "pccompiler", "ir": "pccompiler.ir", "passes": "pccompiler.passes",
           "backends": "pccompiler.backends", "tools": "pccompiler.tools"}


def listed_packages() -> set[str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)^\]", text, re.M | re.S).group(1)
    return set(re.findall(r'"([\w.]+)"', block))


def package_folders() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    return found


def test_every_package_folder_is_installed():
    missing = package_folders() - listed_packages()
    assert not missing, f"add to pyproject.toml [tool.setuptools] packages: {sorted(missing)}"


def test_every_listed_package_exists():
    assert listed_packages() <= package_folders()
