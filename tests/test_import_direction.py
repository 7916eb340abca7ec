"""Data flows one way: no module imports from a later stage of the pipeline.

The stages, lowest first (DESIGN.md, docs/contracts.md):

    base      pccompiler.errors, pccompiler.version
    ir        pccompiler.ir
    frontend  pccompiler.frontend, pccompiler.structures, pccompiler.data
    passes    pccompiler.passes
    backends  pccompiler.backends
    runtime   pccompiler.driver, pccompiler.train, pccompiler.logic
    tools     pccompiler.tools
    cli       pccompiler.cli

A module may import from its own stage and from lower ones. Every import
counts, the ones inside functions too (a deferred import is still a
dependency). The package's `pccompiler/__init__.py` is the public facade
above all stages and resolves its names lazily, so it is not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Folder in the repository -> the package it installs as (pyproject.toml).
FOLDERS = {"pccompiler": "pccompiler", "ir": "pccompiler.ir", "passes": "pccompiler.passes",
           "backends": "pccompiler.backends", "tools": "pccompiler.tools"}

STAGES = [
    ("base", ("pccompiler.errors", "pccompiler.version")),
    ("ir", ("pccompiler.ir",)),
    ("frontend", ("pccompiler.frontend", "pccompiler.structures", "pccompiler.data")),
    ("passes", ("pccompiler.passes",)),
    ("backends", ("pccompiler.backends",)),
    ("runtime", ("pccompiler.driver", "pccompiler.train", "pccompiler.logic")),
    ("tools", ("pccompiler.tools",)),
    ("cli", ("pccompiler.cli",)),
]


def stage_of(module: str) -> int | None:
    """The stage index of a pccompiler module, None outside the package."""
    for index, (_, prefixes) in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def source_modules(root: Path = ROOT, folders: dict[str, str] = FOLDERS) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    modules = {}
    for folder, package in folders.items():
        for path in sorted((root / folder).rglob("*.py")):
            if path.name.endswith("_pb2.py"):
                continue
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def imported_modules(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    package_parts = name.split(".") if is_package else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package_parts[:len(package_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from pkg import sub` may name a submodule: count `pkg.sub` then.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(root: Path = ROOT, folders: dict[str, str] = FOLDERS) -> list[str]:
    out = []
    for name, path in source_modules(root, folders).items():
        own = stage_of(name)
        if own is None:      # the facade pccompiler/__init__.py
            continue
        for line, target in imported_modules(name, path):
            theirs = stage_of(target)
            if theirs is not None and theirs > own:
                out.append(f"{path.relative_to(root)}:{line}: {STAGES[own][0]} module {name} "
                           f"imports {target} of the later stage {STAGES[theirs][0]}")
    return out


def test_every_stage_is_known():
    """Every module of the package belongs to a stage (a new top-level module
    must be placed in STAGES, not slip past the rule)."""
    unknown = [n for n in source_modules() if n != "pccompiler" and stage_of(n) is None]
    assert unknown == []


def test_no_module_imports_a_later_stage():
    bad = violations()
    assert bad == [], "imports against the data flow:\n" + "\n".join(bad)


def test_the_rule_catches_backward_imports(tmp_path):
    """The rule itself, on a made-up tree: a deferred import of the driver
    inside a pass and a relative import of a backend from the IR are
    reported, a pass importing the IR is not (so the rule cannot pass by
    finding nothing)."""
    for folder in ("passes", "ir"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "passes" / "bad.py").write_text(
        "from pccompiler.ir import pcir\n\ndef f():\n    from pccompiler.driver import compile\n")
    (tmp_path / "ir" / "worse.py").write_text("from ..backends import torch\n")
    bad = violations(tmp_path, {"passes": "pccompiler.passes", "ir": "pccompiler.ir"})
    assert len(bad) == 2
    assert "passes/bad.py:4" in bad[0] and "pccompiler.driver" in bad[0] and "runtime" in bad[0]
    assert "ir/worse.py:1" in bad[1] and "pccompiler.backends.torch" in bad[1]


@pytest.mark.parametrize("module, stage", [("pccompiler.ir.checker", "ir"),
                                           ("pccompiler.frontend.builder", "frontend"),
                                           ("pccompiler.passes.helpers.edit", "passes"),
                                           ("pccompiler.train.em", "runtime"),
                                           ("pccompiler.cli.main", "cli")])
def test_stage_of(module, stage):
    assert STAGES[stage_of(module)][0] == stage
