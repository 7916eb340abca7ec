"""Conformance suite options and the support table.

    pytest tests/conformance                    # the torch backend
    pytest tests/conformance --backend triton   # any registered backend(s), comma-separated
    pytest tests/conformance --device cuda      # on a GPU

Every conformance test is marked `@pytest.mark.query(NAME)` and parametrised
by backend and circuit; after the run, docs/support.md gets one cell per
(query, structure, backend): "passes", "refused" (the backend raised
UnsupportedError) or "FAILS". Cells of backends not run are kept.
"""

from __future__ import annotations

import os

import pytest

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "support.md")
_results: dict[tuple[str, str], dict[str, str]] = {}



@pytest.fixture
def device(request) -> str:
    try:
        return request.config.getoption("--device")
    except ValueError:
        return "cpu"


def pytest_configure(config):
    config.addinivalue_line("markers", "query(name): the query a conformance test checks")


def backend_names(config) -> list[str]:
    try:
        value = config.getoption("--backend")
    except ValueError:
        value = "torch"
    return [b.strip() for b in (value or "torch").split(",") if b.strip()]


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", backend_names(metafunc.config))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("query")
    params = getattr(getattr(item, "callspec", None), "params", {})
    if marker is None or "circuit_name" not in params or "backend_name" not in params:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.passed:
            status = "passes"
        elif report.skipped:
            reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
            status = "refused" if "refused" in reason else "n/a"
        else:
            status = "FAILS"
        _results.setdefault((marker.args[0], params["circuit_name"]), {})[params["backend_name"]] = status


def _read_table(path: str) -> tuple[list[str], dict[tuple[str, str], dict[str, str]]]:
    if not os.path.exists(path):
        return [], {}
    rows = [line for line in open(path).read().splitlines() if line.startswith("|")]
    if len(rows) < 2:
        return [], {}
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == len(header):
            table[(cells[0], cells[1])] = dict(zip(header[2:], cells[2:]))
    return header[2:], table


def pytest_sessionfinish(session, exitstatus):
    if not _results:
        return
    backends, table = _read_table(DOCS)
    for key, cells in _results.items():
        table.setdefault(key, {}).update(cells)
    for cells in _results.values():
        for b in cells:
            if b not in backends:
                backends.append(b)
    lines = [
        "# Support table (query x structure x backend)",
        "",
        "Written by the conformance suite (`pytest tests/conformance --backend NAME`);",
        "do not edit by hand. `passes`: matches the float64 reference; `refused`:",
        "the backend raises UnsupportedError; `FAILS`: a conformance failure;",
        "`n/a`: the query does not apply to the circuit (e.g. exact MPE enumeration",
        "of real variables).",
        "",
        "| query | structure | " + " | ".join(backends) + " |",
        "|---|---|" + "---|" * len(backends),
    ]
    for (query, structure) in sorted(table, key=lambda k: (_QUERY_ORDER.get(k[0], 99), k)):
        cells = table[(query, structure)]
        lines.append(f"| {query} | {structure} | " +
                     " | ".join(cells.get(b, "-") for b in backends) + " |")
    os.makedirs(os.path.dirname(DOCS), exist_ok=True)
    tmp = DOCS + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, DOCS)


_QUERY_ORDER = {q: i for i, q in enumerate(
    ["log_prob", "marginal", "em", "sample", "conditional_sample", "mpe"])}
