"""Training and evaluation over a CompiledCircuit.

- `em`: mini-batch and full-batch EM loops, `evaluate` (nats per sample).
- `softening`, `entropy_reg`: the optional EM variants (data softening, an
  entropy-regularised M-step).
- `data`: checks a data table against the Model before any work.
- `progress`: the stderr progress bar of long loops (tqdm).
- `history`: per-epoch training curves as CSV and a plot (`pcc train --history/--plot`).
- `distributed`: data-parallel EM on torch.distributed.
- `checkpoint`: training checkpoints (`pcc train --checkpoint-every N`).
- `prune_grow`: pruning by edge flows, growing by copying nodes, and the
  prune-grow-train loop (`pcc prune | grow`, `pcc train --prune-grow`).
"""

from pccompiler.train.data import check_data, load_data, load_dataset, load_sets
from pccompiler.train.em import (EpochStats, em_step, evaluate, full_batch_em_epoch,
                                 train_em)
from pccompiler.train.entropy_reg import apply_entropy_reg, entropy_regularised
from pccompiler.train.progress import Progress, batches
from pccompiler.train.prune_grow import RoundStats, grow, prune, prune_grow_train
from pccompiler.train.softening import SOFTEN_KERNELS, Softening, make_softening

__all__ = ["check_data", "load_data", "load_dataset", "load_sets", "EpochStats", "em_step", "evaluate",
           "full_batch_em_epoch", "train_em", "apply_entropy_reg", "entropy_regularised",
           "Progress", "batches", "RoundStats", "grow", "prune", "prune_grow_train", "SOFTEN_KERNELS", "Softening", "make_softening"]
