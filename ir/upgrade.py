"""The upgrade chain: older supported ir_versions are rewritten on load.

`UPGRADES[v]` turns a message of ir_version v into one of version v + 1 in
place (it receives the message and whether it is a "model" or "layout").
`upgrade()` applies the steps from the file's version up to IR_VERSION.
With IR_VERSION 1 the chain is empty; the first change of meaning in
ir/pcir.proto adds `UPGRADES[1]` together with the version bump (and the
schema stamp test, tests/ir/test_schema.py, insists on both).
"""

from __future__ import annotations

from typing import Callable, Mapping

from pccompiler.errors import LoadError
from pccompiler.ir import version as _version

UpgradeStep = Callable[[object, str], None]

UPGRADES: dict[int, UpgradeStep] = {}


def upgrade(msg, kind: str = "model", target: int | None = None,
            steps: Mapping[int, UpgradeStep] | None = None) -> None:
    """Upgrade `msg` (a Model or Layout) in place to `target` (IR_VERSION).

    Raises LoadError if the version is outside the supported range or a
    step of the chain is missing.
    """
    target = _version.IR_VERSION if target is None else target
    steps = UPGRADES if steps is None else steps
    start = msg.ir_version
    if start > target:
        raise LoadError(f"{kind} has ir_version {start}, newer than this pccompiler "
                        f"supports ({target}); upgrade pccompiler")
    if start < _version.MIN_SUPPORTED_IR_VERSION:
        raise LoadError(f"{kind} has ir_version {start}, older than the oldest supported "
                        f"version {_version.MIN_SUPPORTED_IR_VERSION}")
    for v in range(start, target):
        step = steps.get(v)
        if step is None:
            raise LoadError(f"no upgrade step from ir_version {v} to {v + 1}")
        step(msg, kind)
        msg.ir_version = v + 1
