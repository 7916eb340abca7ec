"""The layout cache under concurrent writers and on a folder that refuses
writes: every compile succeeds, only valid entries remain, and a cache that
cannot be used gives one warning while compiling goes on without it."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from pccompiler import ir, passes
from pccompiler.passes import cache as cache_mod
from pccompiler.passes.cache import LayoutCache, decode_entry
from tests import factories as F
from tests.robustness.cache_worker import circuits

REPO = Path(__file__).resolve().parents[2]
WORKERS, COMPILES = 8, 50


def test_eight_processes_share_one_cache(tmp_path):
    cache_dir, start = tmp_path / "cache", tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.robustness.cache_worker",
                               str(cache_dir), str(w), str(COMPILES), str(start),
                               str(tmp_path / f"w{w}.json")], cwd=REPO, env=env,
                              stderr=subprocess.PIPE, text=True)
             for w in range(WORKERS)]
    time.sleep(0.5)
    start.touch()
    for p in procs:
        _, err = p.communicate(timeout=150)
        assert p.returncode == 0, err[-2000:]
    stats = [json.loads((tmp_path / f"w{w}.json").read_text()) for w in range(WORKERS)]
    total = sum(s["compiles"] for s in stats)
    hits = sum(s["hits"] for s in stats)
    stores = sum(s["stores"] for s in stats)
    print(f"\ncache: {WORKERS} processes x {COMPILES} compiles = {total} ok, {hits} hits, "
          f"{stores} stores")
    for s in stats:
        assert not s["errors"], s["errors"][0]
        assert s["mismatches"] == 0 and not s["warnings"], s
    assert total == WORKERS * COMPILES and hits > 0 and stores > 0
    # only valid, complete entries remain: one per distinct circuit, no temp files
    entries = sorted(cache_dir.iterdir())
    assert all(e.suffix == ".pclc" for e in entries), [e.name for e in entries]
    models = {passes.cache_key(passes.cache_ingredients(
        m, passes.resolve_pipeline(None, None))): m for w in range(WORKERS) for m in circuits(w)}
    assert len(entries) == len(models) == len(F.ALL_FACTORIES) + WORKERS
    for entry in entries:
        model2, layout = decode_entry(entry.read_bytes(), models[entry.stem])
        ir.check_layout(layout, model2)


def _compile_with_failing_cache(folder, monkeypatch, target, err):
    """compile_model with `target` (os.replace or tempfile.mkstemp) raising err."""
    def refuse(*args, **kwargs):
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(target[0], target[1], refuse)
    model = F.small_block_sparse_model(seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = passes.compile_model(model, cache=LayoutCache(folder))
        second = passes.compile_model(model, cache=LayoutCache(folder))
    monkeypatch.undo()
    ref = passes.compile_model(model)
    for r in (first, second):
        assert not r.cache_hit
        assert r.layout.SerializeToString(deterministic=True) == \
            ref.layout.SerializeToString(deterministic=True)
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EDQUOT])
def test_unwritable_cache_warns_once_and_compiles(tmp_path, monkeypatch, err):
    folder = tmp_path / f"c{err}"
    got = _compile_with_failing_cache(folder, monkeypatch, (cache_mod.os, "replace"), err)
    assert len(got) == 1 and "not writable" in got[0] and os.strerror(err) in got[0], got
    assert not [f for f in folder.iterdir()]                 # no temp file left behind


def test_full_disk_while_writing_the_entry(tmp_path, monkeypatch):
    """ENOSPC from the write itself (not the rename): warning, no debris."""
    folder = tmp_path / "full"
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(cache_mod.os, "fdopen", lambda fd, mode="r", *a, **k: Full(
        real_fdopen(fd, mode, *a, **k)))
    model = F.small_dense_model(seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = passes.compile_model(model, cache=LayoutCache(folder))
    monkeypatch.undo()
    assert not result.cache_hit
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "No space left" in msgs[0], msgs
    assert list(folder.iterdir()) == []


def test_cache_folder_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("I am a file")
    folder = tmp_path / "plain" / "cache"
    model = F.small_sparse_model(seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = passes.compile_model(model, cache=LayoutCache(folder))
    ir.check_layout(result.layout, result.model)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "not writable" in msgs[0], msgs


def test_unreadable_and_corrupt_entries_are_rebuilt(tmp_path):
    folder = tmp_path / "c"
    model = F.small_dense_model(seed=4)
    passes.compile_model(model, cache=LayoutCache(folder))
    (entry,) = folder.iterdir()
    good = entry.read_bytes()
    for bad in (good[: len(good) // 2], good[:40] + bytes(len(good) - 40), b""):
        entry.write_bytes(bad)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            r = passes.compile_model(model, cache=LayoutCache(folder))
        assert not r.cache_hit and entry.read_bytes() == good   # rebuilt in place
    entry.unlink()
    entry.mkdir()                                # an entry that is a folder: unreadable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = passes.compile_model(model, cache=LayoutCache(folder))
    ir.check_layout(r.layout, r.model)
    assert caught
