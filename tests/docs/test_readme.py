"""The README's walk-through runs as written: its `# file:` blocks are
written and its console blocks run (`pcc ...`, `python FILE`) in a fresh
folder, and their outputs must match the README's up to times (the
handbook's rules, tests/docs/test_handbook.py).

    PCC_UPDATE_DOCS=1 pytest tests/docs/test_readme.py     # rewrite the outputs
"""

from __future__ import annotations

from pathlib import Path

from tests.docs.test_handbook import check_page

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_session_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PCC_CACHE_DIR", str(tmp_path / "cache"))
    check_page(README, tmp_path)
    for name in ("my.pcir", "my.pcc", "history.csv", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert rows[0] == "epoch,train_ll,valid_ll,test_ll,seconds,step_size" and len(rows) == 9
