"""Run `pcc ARGS...` with a pause at a chosen step of the file writes, so a
test can SIGKILL it exactly there.

    PCC_KILL_AT=replace:2 python -m tests.robustness.kill_hooks train ...

PCC_KILL_AT is `<call>:<n>[:after]`: at the n-th call of `os.fsync` or
`os.replace` (before it runs, or after it with `:after`) the process prints
`KILLPOINT <spec>` on stdout and sleeps, waiting for the signal. The
pccompiler code is not changed: the hooks wrap the two os functions every
atomic write goes through (data fully written -> fsync -> rename).
"""

from __future__ import annotations

import os
import sys
import time

_REAL = {"fsync": os.fsync, "replace": os.replace}


def _install(spec: str) -> None:
    parts = spec.split(":")
    name, nth, after = parts[0], int(parts[1]), len(parts) > 2 and parts[2] == "after"
    counts = {"fsync": 0, "replace": 0}

    def pause() -> None:
        sys.stdout.write(f"KILLPOINT {spec}\n")
        sys.stdout.flush()
        time.sleep(120)

    def wrap(call: str):
        def hooked(*args, **kwargs):
            counts[call] += 1
            hit = call == name and counts[call] == nth
            if hit and not after:
                pause()
            result = _REAL[call](*args, **kwargs)
            if hit and after:
                pause()
            return result
        return hooked

    os.fsync = wrap("fsync")
    os.replace = wrap("replace")


def main(argv: list[str]) -> int:
    spec = os.environ.get("PCC_KILL_AT", "")
    if spec:
        _install(spec)
    import torch
    torch.set_num_threads(1)
    from pccompiler.cli.main import main as pcc
    return pcc(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
