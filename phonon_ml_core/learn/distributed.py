"""Training on several processes with torch's DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node N $(which phonon-ml) train …`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the
rendezvous address) in each process; :func:`process_group` joins them (gloo on CPU, nccl on CUDA) for the length of
a training run. Inside, every stage of :func:`phonon_ml_core.learn.loop.fit` gives each process its share of the
data (:func:`local_indices`, torch's ``DistributedSampler``), computes the loss through a DDP-wrapped module
(:func:`ddp_loss`: gradients averaged over the processes after each backward pass, weights identical everywhere)
and sums the epoch's losses over the processes (:func:`all_sum`). Only rank 0 writes checkpoints, logs and the
bundle (:func:`is_main`). Without torchrun (or with one process) nothing here is used and training is unchanged.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.distributed as dist

__all__ = ["active", "all_sum", "barrier", "ddp_loss", "is_main", "local_indices", "process_device", "process_group",
           "rank", "torchrun_environment", "world_size"]

log = logging.getLogger(__name__)

#: The environment variables torchrun sets in each process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def torchrun_environment() -> dict[str, int] | None:
    """``{"rank", "world_size", "local_rank"}`` when this process was started by torchrun with more than one
    process; None otherwise. ValueError when the variables are set but inconsistent."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    try:
        env = {"rank": int(os.environ["RANK"]), "world_size": int(os.environ["WORLD_SIZE"]),
               "local_rank": int(os.environ.get("LOCAL_RANK", "0"))}
    except ValueError:
        raise ValueError("RANK/WORLD_SIZE/LOCAL_RANK must be integers: start the run with torchrun") from None
    if env["world_size"] < 1 or not 0 <= env["rank"] < env["world_size"]:
        raise ValueError(f"RANK {env['rank']} and WORLD_SIZE {env['world_size']} do not fit: start the run with "
                         "torchrun")
    if env["world_size"] > 1:
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise ValueError(f"WORLD_SIZE is {env['world_size']} but {', '.join(missing)} is not set: start the run "
                             "with torchrun --nproc_per_node N")
    return env if env["world_size"] > 1 else None


def active() -> bool:
    """Whether this process is one of several in a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes training together (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this process writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (nothing without a process group)."""
    if active():
        dist.barrier()


@contextlib.contextmanager
def process_group(device: str = "cpu") -> Iterator[dict[str, int] | None]:
    """Join the torchrun process group for the body (gloo on CPU; for ``device`` cuda, nccl for CUDA tensors and
    gloo for CPU ones, each process on the GPU of its LOCAL_RANK); yields the environment, or None (and does
    nothing) outside torchrun or when a group is already initialised by the caller."""
    env = torchrun_environment()
    if env is None or (dist.is_available() and dist.is_initialized()):
        yield env
        return
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed: train in one process (without torchrun)")
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(env["local_rank"])
    # CPU tensors (the stages that stay on the CPU, the summed losses) go through gloo, CUDA tensors through nccl
    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo")
    log.info("process %d of %d (%s)", env["rank"], env["world_size"], dist.get_backend())
    try:
        yield env
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def checkpoint_folder(out: Path, checkpoint_dir: str | os.PathLike | None, resume: bool,
                      clear_stale: Callable[[Path], None]) -> Iterator[Path]:
    """The checkpoint folder of a training that writes ``out``: ``checkpoint_dir``, or a private temporary folder
    beside ``out`` (removed on the way out, whatever happens). Without ``resume`` rank 0 first clears another run's
    checkpoints from a given folder (``clear_stale``); after success, once every process is done, rank 0 removes
    the folder. Call inside :func:`process_group`."""
    private = checkpoint_dir is None
    ckdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".checkpoints", dir=out.parent)) if private \
        else Path(checkpoint_dir)
    if is_main() and not resume and not private and ckdir.exists():
        clear_stale(ckdir)
    barrier()
    try:
        yield ckdir
    finally:
        if private:
            shutil.rmtree(ckdir, ignore_errors=True)
    barrier()
    if is_main():
        shutil.rmtree(ckdir, ignore_errors=True)


def process_device(device: str) -> str:
    """The device of this process for ``device``: under torchrun, ``cuda`` means the GPU of LOCAL_RANK."""
    env = torchrun_environment()
    if env is not None and str(device) == "cuda":
        return f"cuda:{env['local_rank']}"
    return str(device)


def local_indices(n: int, epoch: int, seed: int) -> torch.Tensor:
    """This process's share of a shuffled epoch of ``n`` samples (torch's DistributedSampler, seeded, equal
    shares: a few samples repeat when ``n`` is not a multiple of the world size)."""
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(n), num_replicas=world_size(), rank=rank(), shuffle=True, seed=int(seed))
    sampler.set_epoch(int(epoch))
    return torch.as_tensor(list(sampler), dtype=torch.long)


class _LossModule(torch.nn.Module):
    """A model with its loss function, so that DistributedDataParallel sees the whole forward pass."""

    def __init__(self, model: torch.nn.Module, loss_fn: Callable):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: tuple[torch.Tensor, ...], generator: torch.Generator | None):
        return self.loss_fn(self.model, batch, generator)


def ddp_loss(model: torch.nn.Module, loss_fn: Callable) -> Callable:
    """``loss_fn`` computed through a DistributedDataParallel module of ``model`` (weights broadcast from rank 0
    now; gradients averaged over the processes in each backward pass). Same signature as ``loss_fn``."""
    from torch.nn.parallel import DistributedDataParallel

    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return loss_fn
    device = trainable[0].device
    wrapped = DistributedDataParallel(_LossModule(model, loss_fn), find_unused_parameters=False,
                                      device_ids=[device.index] if device.type == "cuda" else None)

    def fn(_model: torch.nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator | None):
        return wrapped(batch, generator)
    return fn


def all_sum(values: dict[str, float]) -> dict[str, float]:
    """The sums of ``values`` over all processes (the values themselves without a process group)."""
    if not active() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))
