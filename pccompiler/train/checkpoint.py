"""Training checkpoints: `pcc train --checkpoint-every N` and `--resume`.

A checkpoint is an ordinary .pcc file (`<output>.ckpt`, written atomically
through `ir.fileio.atomic_write`) whose manifest also holds
`training_state`: the last finished epoch, the batch-order generator's
state and a fingerprint of what must not change between the runs (data
bytes, epochs, batch size, EM mode, step sizes, pseudocount, seed). A
resumed run starts after that epoch with the same generator state, so its
result equals that of an uninterrupted run; a process killed at any moment
leaves the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from pccompiler.errors import LoadError


def checkpoint_path(output: str) -> str:
    return output + ".ckpt"


def fingerprint(args: Any, train: np.ndarray) -> dict:
    """What a checkpoint must agree on to be resumed."""
    return {"epochs": args.epochs, "batch_size": args.batch_size, "em": args.em,
            "step_size": args.step_size, "step_size_end": args.step_size_end,
            "pseudocount": args.pseudocount, "seed": args.seed,
            "data_sha256": hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest()}


def write_checkpoint(path: str, circuit: Any, state: dict, prints: dict) -> None:
    """Save the circuit's current parameters and `state` to `path` atomically."""
    from pccompiler.ir.artifact import write_pcc
    write_pcc(path, circuit, extra={"training_state": {**state, "options": prints}})


def resume_state(circuit: Any, path: str, prints: dict) -> dict:
    """The training state of a checkpoint loaded as `circuit` (LoadError if
    it has none or was made with other data or options)."""
    state = (getattr(circuit, "manifest", None) or {}).get("training_state")
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) \
            or not isinstance(state.get("rng_state"), dict):
        raise LoadError(f"{path}: not a training checkpoint (no training state)")
    if state.get("options") != prints:
        differ = sorted(k for k in set(prints) | set(state.get("options") or {})
                        if prints.get(k) != (state.get("options") or {}).get(k))
        raise LoadError(f"{path}: the checkpoint was made with other {', '.join(differ)}; "
                        "remove it or train without --resume")
    return state
