"""One of several processes hammering one layout cache folder.

    python -m tests.robustness.cache_worker CACHE_DIR WORKER_ID COMPILES START_FILE OUT.json

Waits for START_FILE (so every worker starts together), then compiles
COMPILES times, cycling over the shared factory circuits (every worker
compiles them: same keys, racing stores) and one circuit of its own (a key
no other worker has). Every third compile first deletes the entry it is
about to use, so stores keep racing with loads. Each result is compared with
the layout compiled without a cache (byte-identical) and checked with
`ir.check_layout`. Writes {"compiles", "hits", "stores", "mismatches",
"errors", "warnings"} as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings

from pccompiler import ir, passes
from pccompiler.passes.cache import LayoutCache
from tests import factories as F


def circuits(worker: int) -> list:
    shared = [make(seed=1) for _, make in sorted(F.ALL_FACTORIES.items())]
    own = F.build_model(seed=worker, num_cats=4 + worker, name=f"own-{worker}")
    return shared + [own]


def main(argv: list[str]) -> int:
    cache_dir, worker, count, start_file, out = argv[0], int(argv[1]), int(argv[2]), argv[3], argv[4]
    models = circuits(worker)
    expected = [passes.compile_model(m).layout.SerializeToString(deterministic=True)
                for m in models]
    cache = LayoutCache(cache_dir)
    stats = {"compiles": 0, "hits": 0, "stores": 0, "mismatches": 0, "errors": [],
             "warnings": []}
    while not os.path.exists(start_file):
        time.sleep(0.005)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(count):
            k = (i + worker) % len(models)
            model = models[k]
            try:
                if i % 3 == 0:
                    key = cache.key(model, passes.resolve_pipeline(None, None))
                    try:
                        os.unlink(cache.path(key))
                    except FileNotFoundError:
                        pass
                result = passes.compile_model(model, cache=cache)
                stats["compiles"] += 1
                stats["hits"] += int(result.cache_hit)
                stats["stores"] += int(any(n.startswith("stored")
                                           for n in result.report.cache_notes))
                ir.check_layout(result.layout, result.model)
                got = result.layout.SerializeToString(deterministic=True)
                if got != expected[k]:
                    stats["mismatches"] += 1
            except Exception:  # noqa: BLE001 - reported to the parent test
                stats["errors"].append(traceback.format_exc()[-1500:])
        stats["warnings"] = [str(w.message) for w in caught]
    with open(out, "w") as f:
        json.dump(stats, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
