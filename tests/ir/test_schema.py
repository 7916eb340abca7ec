"""The generated protobuf module and the schema snapshot are up to date.

* ir/pcir_pb2.py(i) must be exactly what `make proto` generates from
  ir/pcir.proto (protoc of grpcio-tools, installed with the dev extras).
* ir/pcir.proto.stamp is a copy of the schema taken at an IR_VERSION. A
  change of the schema (comments and blank lines aside) fails this test until
  the stamp is refreshed, and refreshing insists on an IR_VERSION bump (with
  an upgrade step in ir/upgrade.py), unless the change keeps every old file
  meaning the same (`--no-bump "reason"`, e.g. a new optional field).

Refresh:  .venv/bin/python tests/ir/test_schema.py --refresh [--no-bump REASON]
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO = ROOT / "ir" / "pcir.proto"
STAMP = ROOT / "ir" / "pcir.proto.stamp"
VERSION_FILE = ROOT / "ir" / "version.py"
STAMP_HEADER = re.compile(r"^// pcir schema stamp: IR_VERSION (\d+)\n")
REFRESH = ".venv/bin/python tests/ir/test_schema.py --refresh"

# A copy of tests/ run against an installed package (bench/gpu/*.sh copy the
# tests to /tmp/t) has no source tree beside it: these checks are about the
# source files, so they skip there instead of failing on a missing file.
pytestmark = pytest.mark.skipif(not (PROTO.is_file() and STAMP.is_file()),
                                reason=f"no source tree at {ROOT} (tests copied away from it)")


def schema_tokens(text: str) -> str:
    """The schema without comments and with whitespace normalised."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return " ".join(text.split())


def current_ir_version() -> int:
    match = re.search(r"^IR_VERSION\s*=\s*(\d+)", VERSION_FILE.read_text(), re.M)
    assert match, "ir/version.py defines no IR_VERSION"
    return int(match.group(1))


def read_stamp() -> tuple[int, str]:
    text = STAMP.read_text()
    match = STAMP_HEADER.match(text)
    assert match, f"{STAMP} has no '// pcir schema stamp: IR_VERSION N' first line"
    return int(match.group(1)), text


def test_stamp_matches_proto_and_version():
    stamped_version, stamp = read_stamp()
    assert schema_tokens(stamp) == schema_tokens(PROTO.read_text()), (
        "ir/pcir.proto changed since ir/pcir.proto.stamp was taken. If the change alters "
        "what an existing field means or adds a required field: bump IR_VERSION in "
        "ir/version.py and add an upgrade step to ir/upgrade.py. Then refresh the stamp: "
        f"`{REFRESH}` (add `--no-bump REASON` for a change that keeps old files valid).")
    assert stamped_version == current_ir_version(), (
        f"the stamp was taken at IR_VERSION {stamped_version} but ir/version.py says "
        f"{current_ir_version()}: refresh it with `{REFRESH}`")


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools is not installed (pip install -e '.[dev]')")
def test_generated_module_is_up_to_date(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}",
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", str(PROTO)],
                   check=True, capture_output=True)
    for name in ("pcir_pb2.py", "pcir_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        # the same rewrite as `make proto`: package-relative imports
        fresh = re.sub(r"^import ([A-Za-z0-9_]+_pb2) as ", r"from . import \1 as ", fresh,
                       flags=re.M)
        assert (ROOT / "ir" / name).read_text() == fresh, \
            f"ir/{name} is stale: run `make proto` and commit the result"


def refresh(argv: list[str]) -> int:
    """Rewrite the stamp, refusing a schema change without a version bump."""
    version = current_ir_version()
    stamped_version, stamp = read_stamp()
    changed = schema_tokens(stamp) != schema_tokens(PROTO.read_text())
    if changed and version <= stamped_version and "--no-bump" not in argv:
        print(f"refusing: the schema changed but IR_VERSION is still {version}. Bump it in "
              "ir/version.py (with an upgrade step in ir/upgrade.py), or pass "
              "--no-bump REASON if old files keep their meaning.", file=sys.stderr)
        return 1
    STAMP.write_text(f"// pcir schema stamp: IR_VERSION {version}\n"
                     f"// A copy of ir/pcir.proto; refresh with: {REFRESH}\n"
                     + PROTO.read_text())
    print(f"stamped ir/pcir.proto at IR_VERSION {version}")
    return 0


if __name__ == "__main__":
    if "--refresh" in sys.argv:
        sys.exit(refresh(sys.argv))
    print(__doc__)
