"""Data-parallel EM on torch.distributed (NCCL on GPUs, gloo on CPUs).

Every rank holds the whole compiled circuit and the whole data set. Each
global batch (the same batches, in the same order, as single-process
`train_em` with the same seed) is cut into `world_size` contiguous parts;
rank r runs forward/backward on part r only. Before each EM update the
parameter flows are all-reduced (sum), so every rank applies the update the
whole batch would give, and the ranks' parameters stay identical. Full-batch
EM all-reduces once per epoch. Any backend whose Engine exposes
`sum_param_flows` / `input_param_flows` / `input_node_flows` works (torch,
triton): nothing here touches a kernel.

Two ways to start it:

    pcc train model.pcc --data train.data --nproc 2 -o out.pcc
    torchrun --nproc-per-node 2 -m pccompiler.cli.main train model.pcc ... -o out.pcc

`--nproc N` spawns N workers (torch.multiprocessing) that rendezvous on a
free local TCP port; under torchrun (RANK / WORLD_SIZE / MASTER_ADDR set)
`pcc train` joins the group torchrun made. Only rank 0 logs, draws the
progress bar and writes the output, and only after every rank has finished
training (a final collective no failed rank can pass); the write itself is
atomic (`write_pcc`). A failure on one rank ends all ranks: the spawner
terminates the others and raises `RankError` naming the rank and its error
(`pcc` exits 1); under torchrun its elastic agent does the same.

Floating point: with 2 ranks each all-reduced entry is a + b, which is the
same on both ranks (addition commutes), so the ranks stay bit-identical on
the CPU; against single-process training the only difference is the order in
which a batch's flows are summed (~1e-16 relative in float64, ~1e-7 in
float32). GPU index_add_ atomics can differ between ranks by an ulp, so
`finish` measures the largest parameter difference between ranks and rank
0's parameters are the ones saved.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from pccompiler.errors import PCError

#: Test hook: the rank named here raises at its first flow all-reduce, while
#: the others wait in it (how a mid-training failure looks).
FAIL_ENV = "PCC_DIST_FAIL_RANK"
#: Seconds a collective may wait for a peer before it fails (a hung rank),
#: default 600.
TIMEOUT_ENV = "PCC_DIST_TIMEOUT"


class RankError(PCError):
    """A worker rank failed; the message names the rank and its error."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def under_torchrun() -> bool:
    """True in a process started by torchrun (it sets these variables)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def rank_device(device: str | None, rank: int) -> str:
    """The device of `rank`: "cuda" (or the default on a CUDA machine) is
    cuda:<local rank>; a fixed "cuda:N" cannot serve several ranks."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            raise PCError(f"--device {device}: with several ranks each rank takes cuda:<rank>; "
                          f"give --device cuda")
        if rank >= torch.cuda.device_count():
            raise PCError(f"rank {rank} needs cuda:{rank}, but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
        return f"cuda:{rank}"
    return device


@dataclass
class DataParallel:
    """The rank's view of the group: the `sync` object `train_em` takes.

    split(rows)         this rank's contiguous part of a global batch
    reduce_flows(c)     all-reduce (sum) the circuit's parameter flows
    sum(x)              a float summed over ranks (log-likelihood totals)
    """
    rank: int
    world_size: int
    fail_on_reduce: bool = False

    def split(self, rows: np.ndarray) -> np.ndarray:
        """Part `rank` of `rows` cut into `world_size` contiguous pieces (the
        first len % world_size pieces one longer); the pieces in rank order
        concatenate to `rows`, so the global batch order is single-process'."""
        n, w = len(rows), self.world_size
        bounds = [r * (n // w) + min(r, n % w) for r in range(w + 1)]
        return rows[bounds[self.rank]: bounds[self.rank + 1]]

    def reduce_flows(self, circuit) -> None:
        """Sum the EM statistics of every rank in place. input_node_flows is
        read only for Bernoulli/Gaussian rows, so it is sent only then."""
        if self.fail_on_reduce:
            raise RuntimeError(f"injected failure on rank {self.rank} ({FAIL_ENV})")
        eng = circuit.engine
        tensors = [eng.sum_param_flows, eng.input_param_flows]
        if eng.index.bernoulli_rows.numel() or eng.index.gaussian_rows.numel():
            tensors.append(eng.input_node_flows)
        works = [dist.all_reduce(t, op=dist.ReduceOp.SUM, async_op=True) for t in tensors]
        for w in works:
            w.wait()

    def sum(self, value: float) -> float:
        t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def max_param_difference(self, circuit) -> float:
        """Largest |param - rank 0's param| over all ranks (0.0 when the
        ranks agree bit for bit). A collective: every rank calls it; it is
        also the barrier rank 0 waits on before it writes anything."""
        eng = circuit.engine
        worst = 0.0
        for p in (eng.sum_params.data, eng.input_params.data):
            ref = p.clone()
            dist.broadcast(ref, src=0)
            if p.numel():
                worst = max(worst, float((p - ref).abs().max()))
        worst = torch.tensor([worst], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        return float(worst.item())


def _comm_device() -> torch.device:
    """Where small collective tensors live: NCCL needs the rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_group(rank: int, world_size: int, device: str, init_method: str) -> DataParallel:
    """Join the process group (NCCL for a CUDA device, else gloo)."""
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "600")))
    kwargs: dict[str, Any] = {}
    if backend == "nccl":
        kwargs["device_id"] = torch.device(device)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=timeout, **kwargs)
    fail = os.environ.get(FAIL_ENV, "") == str(rank)
    return DataParallel(rank, world_size, fail_on_reduce=fail)


# ---------------------------------------------------------------- spawning
def _entry(rank: int, world_size: int, init_method: str, fn: Callable, args: tuple,
           errors: Any) -> None:
    """Worker body: join the group, run fn(sync, rank's device, *args[1:]), leave. An error is
    put on the queue (rank, type, message) before it propagates, so the
    parent can report it without a traceback."""
    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        device = rank_device(args[0] if args else None, rank)
        sync = init_group(rank, world_size, device, init_method)
    except BaseException as exc:
        errors.put((rank, type(exc).__name__, str(exc)))
        raise
    try:
        fn(sync, device, *args[1:])
    except BaseException as exc:
        # queued before this rank's sockets close: the peers' "connection
        # reset" errors, which that causes, come after it in the queue. No
        # orderly leave: the group is broken and the process ends anyway.
        errors.put((rank, type(exc).__name__, str(exc)))
        raise
    dist.destroy_process_group()


def spawn(world_size: int, fn: Callable, args: tuple = (), timeout: float | None = None) -> None:
    """Run `fn(sync, device, *args[1:])` on `world_size` spawned ranks;
    args[0] is the device asked for ("cpu", "cuda" or None), which each
    rank resolves with `rank_device`. Returns when all succeed; if one fails the others
    are terminated and RankError says which rank failed and why; past
    `timeout` seconds every rank is terminated (a hung rank cannot hang the
    caller)."""
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessException
    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    init_method = f"tcp://127.0.0.1:{free_port()}"
    procs = mp.spawn(_entry, args=(world_size, init_method, fn, args, errors),
                     nprocs=world_size, join=False, start_method="spawn")
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not procs.join(timeout=0.5):
            if deadline is not None and time.monotonic() > deadline:
                raise RankError(f"distributed training did not finish in {timeout:g} s; "
                                f"all {world_size} ranks were stopped")
    except ProcessException as exc:
        raise RankError(_failure_message(errors, exc)) from None
    finally:
        for p in procs.processes:
            if p.is_alive():
                p.terminate()
                p.join(5)


def _failure_message(errors: Any, exc: Exception) -> str:
    """'rank r: Type: message' of the first rank that reported an error
    (ranks killed because of it report nothing), else the spawner's text."""
    if not errors.empty():
        rank, kind, message = errors.get()
        return f"rank {rank} failed: {kind}: {message}"
    return f"a rank failed: {exc}"


# ---------------------------------------------------------------- pcc train
def train_worker(sync: DataParallel, device: str | None, args: Any) -> None:
    """One rank of `pcc train` on its (resolved) device: load, train on its
    shard, rank 0 writes."""
    from pccompiler.driver import open_circuit
    from pccompiler.train import evaluate, load_sets, train_em
    lead = sync.rank == 0
    out = print if lead else (lambda *a, **k: None)
    circuit = open_circuit(args.file, args.backend, device)
    model = circuit.model
    train, valid, test = load_sets(model, args.data, args.dataset, args.valid, args.test,
                                   args.data_format)
    train_em(circuit, train, valid, epochs=args.epochs, batch_size=args.batch_size, em=args.em,
             step_size=args.step_size, step_size_end=args.step_size_end,
             pseudocount=args.pseudocount, seed=args.seed, log=out,
             progress=None if args.quiet or not lead else sys.stderr, sync=sync)
    diff = sync.max_param_difference(circuit)        # also: every rank got here
    if diff > 0:
        out(f"note: ranks' parameters differ by up to {diff:.3g} (rank 0's are saved)")
    if lead:
        if test is not None:
            out(f"test LL {evaluate(circuit, test, args.batch_size):.4f}")
        circuit.save(args.output)
        out(f"saved {args.output} ({sync.world_size} ranks)")
    sys.stdout.flush()


def run_train(args: Any) -> int:
    """`pcc train` with --nproc N > 1 (spawn) or under torchrun (join)."""
    if under_torchrun():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        if args.nproc not in (1, world):
            raise PCError(f"--nproc {args.nproc} under torchrun, which started {world} ranks: "
                          f"leave --nproc out (torchrun's --nproc-per-node sets it)")
        local = int(os.environ.get("LOCAL_RANK", rank))
        device = rank_device(args.device, local)
        sync = init_group(rank, world, device, "env://")
        try:
            train_worker(sync, device, args)
        finally:
            dist.destroy_process_group()
        return 0
    if torch.device(args.device or "cpu").type == "cuda" or (
            args.device is None and torch.cuda.is_available()):
        rank_device(args.device, args.nproc - 1)        # enough GPUs? fail before spawning
    spawn(args.nproc, train_worker, (args.device, args))
    return 0
