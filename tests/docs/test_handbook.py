"""The handbook's examples run: docs/handbook/*.md cannot go stale.

Conventions of a handbook page (docs/handbook/README.md repeats them):

* A fenced block whose first line is `# file: NAME` is written, without
  that line, to NAME in the page's folder, in page order, before the
  page's commands run.
* A ```console block holds commands: a line starting with `$ ` is a
  command, the lines up to the next command are its expected output
  (stdout and stderr together; a final `[exit N]` line when it fails).
  Commands are `pcc ...` (run in this process through
  `pccompiler.cli.main.main`) and `python FILE ...` (run with runpy).
* Every page runs in a fresh folder that already holds `example.py` and
  `example.pcir`, made by the `# file: example.py` block of frontend.md.

The comparison normalises only times and memory: the seconds and MB
columns of `--time-passes`, the `0.06 s` of `pcc build`, the epoch times
of `pcc train`, and the temporary folder's path (see `normalise`).

    pytest tests/docs/test_handbook.py                        # check
    PCC_UPDATE_DOCS=1 pytest tests/docs/test_handbook.py      # rewrite the outputs
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest

HANDBOOK = Path(__file__).resolve().parents[2] / "docs" / "handbook"
PAGES = sorted(p.name for p in HANDBOOK.glob("*.md"))
EXAMPLE_PAGE, EXAMPLE_FILE = "frontend.md", "example.py"
UPDATE = os.environ.get("PCC_UPDATE_DOCS") == "1"

FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
FILE_LINE = re.compile(r"#\s*file:\s*(\S+)\s*$")


# ------------------------------------------------------------------ parsing

def blocks(text: str):
    """(lang, body, span of the body) of every fenced block, in order."""
    for m in FENCE.finditer(text):
        yield m.group("lang"), m.group("body"), m.span("body")


def file_blocks(text: str) -> list[tuple[str, str]]:
    """(name, content) of every `# file: NAME` block."""
    out = []
    for _, body, _ in blocks(text):
        first, _, rest = body.partition("\n")
        m = FILE_LINE.match(first.strip())
        if m:
            out.append((m.group(1), rest))
    return out


def commands(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in body.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            out.append((line[2:].strip(), []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"console block starts with output, not a `$ ` command: {line!r}")
    return out


def normalise(text: str, folder: str) -> str:
    """The only differences allowed between a page and a run."""
    text = text.replace(folder, ".")
    lines = []
    for line in text.rstrip("\n").split("\n"):
        # --time-passes rows: "name   0.012   280   2  yes  notes" and "total   0.093"
        line = re.sub(r"^(\S+)\s+\d+\.\d+\s+\d+\s+-?\d+(?=\s+(?:yes|no)\b)", r"\1 [time]", line)
        line = re.sub(r"^total\s+\d+\.\d+$", "total [time]", line)
        line = re.sub(r", \d+\.\d+ s -> ", ", [time] s -> ", line)   # pcc build
        line = re.sub(r"^(epoch .*\s)\d+\.\d+s$", r"\1[time]s", line)    # pcc train
        lines.append(line.rstrip())
    return "\n".join(lines)


# ------------------------------------------------------------------ running

def run_command(command: str) -> str:
    """Run one handbook command in the current folder; its output."""
    argv = shlex.split(command)
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            if argv[0] == "pcc":
                from pccompiler.cli.main import main
                code = main(argv[1:])
            elif argv[0] == "python" and len(argv) >= 2:
                saved = sys.argv
                sys.argv = argv[1:]
                try:
                    runpy.run_path(argv[1], run_name="__main__")
                finally:
                    sys.argv = saved
            else:
                raise AssertionError(f"handbook commands are `pcc ...` or `python FILE`: {command!r}")
        except SystemExit as exc:        # argparse, or a script calling sys.exit
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    text = out.getvalue()
    if code:
        text = text.rstrip("\n") + f"\n[exit {code}]\n"
    return text


@pytest.fixture(scope="module")
def example_folder(tmp_path_factory) -> Path:
    """A folder holding example.py and the example.pcir it writes."""
    folder = tmp_path_factory.mktemp("example")
    files = dict(file_blocks((HANDBOOK / EXAMPLE_PAGE).read_text()))
    assert EXAMPLE_FILE in files, f"{EXAMPLE_PAGE} has no `# file: {EXAMPLE_FILE}` block"
    (folder / EXAMPLE_FILE).write_text(files[EXAMPLE_FILE])
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        run_command(f"python {EXAMPLE_FILE}")
    finally:
        os.chdir(cwd)
    assert (folder / "example.pcir").exists(), f"{EXAMPLE_FILE} did not write example.pcir"
    return folder


def test_pages_exist():
    expected = {"README.md", "frontend.md", "ir.md", "backend-reference.md", "backend-torch.md",
                "backend-triton.md", "prune-grow.md"}
    from pccompiler.passes import DEFAULT_PIPELINE
    expected |= {f"pass-{name.strip()}.md" for name in DEFAULT_PIPELINE.split(",")}
    assert expected <= set(PAGES), f"missing handbook pages: {sorted(expected - set(PAGES))}"
    index = (HANDBOOK / "README.md").read_text()
    for page in sorted(expected - {"README.md"}):
        assert f"({page})" in index, f"README.md does not link {page}"


def check_page(path: Path, folder: Path, update: bool = UPDATE) -> None:
    """Write the page's `# file:` blocks into `folder` (the current folder),
    run its console blocks there and compare their outputs with the page's
    (rewriting them instead when `update`)."""
    text = path.read_text()
    for name, content in file_blocks(text):
        (folder / name).write_text(content)
    edits: list[tuple[tuple[int, int], str]] = []
    failures = []
    for lang, body, span in blocks(text):
        if lang != "console":
            continue
        new_body = []
        for command, expected in commands(body):
            actual = run_command(command)
            shown = actual.replace(str(folder), ".").rstrip("\n")
            if normalise("\n".join(expected), str(folder)) != normalise(actual, str(folder)):
                failures.append(f"$ {command}\n--- {path.name} says:\n" + "\n".join(expected)
                                + f"\n--- it prints:\n{shown}")
            else:                  # unchanged up to times: keep the page's text
                shown = "\n".join(expected).rstrip("\n")
            new_body.append(f"$ {command}" + (f"\n{shown}" if shown else ""))
        edits.append((span, "\n".join(new_body) + "\n"))
    if update:
        for (start, end), new in reversed(edits):
            text = text[:start] + new + text[end:]
        path.write_text(text)
        return
    assert not failures, ("\n\n".join(failures)
                          + f"\n\n(PCC_UPDATE_DOCS=1 pytest {Path(__file__).parent.name}/... "
                            "rewrites the outputs)")


@pytest.mark.parametrize("page", PAGES)
def test_page_examples(page, example_folder, tmp_path, monkeypatch):
    for name in ("example.py", "example.pcir"):
        shutil.copy(example_folder / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PCC_CACHE_DIR", str(tmp_path / "cache"))
    check_page(HANDBOOK / page, tmp_path)
