"""The generic training loop of every stage: mini-batches, validation, early stopping, atomic checkpoints.

Every stage checkpoints atomically every ``checkpoint_every`` epochs (model, optimiser, scheduler,
random-generator state, history, early-stopping state); resuming gives the same weights as an
uninterrupted run on CPU.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.learn import distributed
from phonon_ml_core.learn.configs import StageConfig

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "phonon-ml-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file renamed onto ``path``)."""
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; a truncated, foreign or corrupted file raises ValueError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for bad files
        raise ValueError(f"checkpoint {path} is corrupted or unreadable ({type(exc).__name__}: {exc}); "
                         "delete it or rerun without --resume") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a phonon-ml training checkpoint; delete it or rerun without --resume")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path} has version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    return state


# --------------------------------------------------------------------------- generic loop
@dataclass
class FitResult:
    """Outcome of one stage: per-epoch history and the best validation (or training) loss."""

    history: list[dict[str, Any]]
    best_loss: float
    epochs_run: int
    stopped_early: bool


LossFn = Callable[[torch.nn.Module, tuple[torch.Tensor, ...], torch.Generator | None], dict[str, torch.Tensor]]


def _make_optimizer(params, cfg: StageConfig, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay, foreach=True)


def _evaluate(model: torch.nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, ...], batch: int,
              device: torch.device | None = None) -> float:
    model.eval()
    n = data[0].shape[0]
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            part = tuple(t[i:i + batch].to(device) for t in data)
            total += float(loss_fn(model, part, None)["loss"]) * part[0].shape[0]
    return total / n


def fit(model: torch.nn.Module, loss_fn: LossFn,
        train: tuple[torch.Tensor, ...] | Callable[[int], tuple[torch.Tensor, ...]],
        val: tuple[torch.Tensor, ...] | None, cfg: StageConfig, lr: float, *, stage: str, seed: int,
        checkpoint: Path | None = None, resume: bool = False, signature: dict[str, Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None, progress: bool = True,
        device: str | torch.device = "cpu") -> FitResult:
    """Minimise ``loss_fn`` over mini-batches of ``train``; validation, early stopping, checkpoints.

    ``loss_fn(model, batch, generator)`` returns a dict with a scalar 'loss' (and optional scalars).
    ``train`` may be a function of the epoch index returning that epoch's tensors (on-the-fly data).
    With a validation set the best-validation weights are restored at the end. ``on_epoch`` sees each
    epoch record (a test may raise from it to simulate an interruption).

    Under torchrun (:mod:`phonon_ml_core.learn.distributed`) each process takes its share of every epoch, the
    loss runs through DistributedDataParallel (gradients averaged), the epoch's losses are summed over the
    processes, every process validates on the whole validation set, and rank 0 alone writes checkpoints.
    ``device``: where the model, the mini-batches and the random draws live (the data stay where they are).
    """
    dev = torch.device(device)
    model.to(dev)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    opt = _make_optimizer(model.parameters(), cfg, lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
             if cfg.schedule == "cosine" else None)
    history: list[dict[str, Any]] = []
    best_loss, best_state, bad, start = math.inf, None, 0, 0
    source = train if callable(train) else None  # on-the-fly: fresh training tensors every epoch
    n_train = "on-the-fly" if source is not None else int(train[0].shape[0])
    signature = json.loads(json.dumps(dict(signature or {}, stage=stage, lr=lr, n_train=n_train,
                                           n_val=0 if val is None else int(val[0].shape[0]),
                                           stage_config=asdict(cfg))))
    if resume and checkpoint is not None and checkpoint.exists():
        st = load_checkpoint(checkpoint)
        if st.get("signature") != signature:
            raise ValueError(f"checkpoint {checkpoint} was written by a run with other settings or data; "
                             "rerun without --resume (or with the original settings)")
        model.load_state_dict(st["model"])
        if st.get("complete"):
            return FitResult(st["history"], st["best_loss"], len(st["history"]), st["stopped_early"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None:
            sched.load_state_dict(st["scheduler"])
        gen.set_state(st["generator"])
        history, best_loss, best_state, bad, start = (st["history"], st["best_loss"], st["best_state"],
                                                      st["bad_epochs"], st["epoch"])
        log.info("%s: resumed from %s after epoch %d", stage, checkpoint, start)

    def state(epoch: int, complete: bool, stopped: bool) -> dict[str, Any]:
        return {"signature": signature, "stage": stage, "epoch": epoch, "complete": complete,
                "stopped_early": stopped, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": None if sched is None else sched.state_dict(), "generator": gen.get_state(),
                "history": history, "best_loss": best_loss, "best_state": best_state, "bad_epochs": bad}

    stopped = False
    parallel = distributed.active()
    writes = distributed.is_main()
    step_loss = distributed.ddp_loss(model, loss_fn) if parallel else loss_fn
    batch_size = -(-cfg.batch_size // distributed.world_size())  # each process's share of a mini-batch
    bar = tqdm(range(start, cfg.epochs), desc=stage, disable=not progress or not writes, leave=False, initial=start,
               total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        if source is not None:
            train = source(epoch)
        n = train[0].shape[0]
        model.train()
        if parallel:  # this process's share; its own random draws, fixed by seed, epoch and rank (exact resume)
            perm = distributed.local_indices(n, epoch, seed)
            gen.manual_seed(int(seed) * 1_000_003 + epoch * distributed.world_size() + distributed.rank())
        elif dev.type == "cpu":
            perm = torch.randperm(n, generator=gen)
        else:
            perm = torch.randperm(n, generator=gen, device=dev).cpu()
        sums: dict[str, float] = {}
        for i in range(0, perm.numel(), batch_size):
            idx = perm[i:i + batch_size]
            out = step_loss(model, tuple(t[idx].to(dev) for t in train), gen)
            if not torch.isfinite(out["loss"]):
                raise ValueError(f"{stage}: the loss became {float(out['loss'])} at epoch {epoch + 1}; "
                                 "lower the learning rate (--lr) or use --optimizer adam")
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * idx.numel()
        if parallel:
            sums = distributed.all_sum({**sums, " count": float(perm.numel())})
            n = sums.pop(" count")
        rec: dict[str, Any] = {"stage": stage, "epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
        rec.update({f"train_{k}": v / n for k, v in sums.items()})
        if sched is not None:
            sched.step()
        monitor = rec["train_loss"]
        if val is not None and val[0].shape[0] > 0:
            rec["val_loss"] = monitor = _evaluate(model, loss_fn, val, max(cfg.batch_size, 256), dev)
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        if monitor < best_loss:
            best_loss, bad = monitor, 0
            if val is not None:
                best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        bar.set_postfix(loss=f"{monitor:.3g}")
        stopped = cfg.patience is not None and bad >= cfg.patience
        last = stopped or epoch + 1 == cfg.epochs
        if writes and checkpoint is not None and not last and (epoch + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(checkpoint, state(epoch + 1, False, False))
        if on_epoch is not None:
            on_epoch(rec)
        if stopped:
            log.info("%s: early stop after epoch %d (no improvement for %d epochs)", stage, epoch + 1, bad)
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if writes and checkpoint is not None:
        save_checkpoint(checkpoint, state(len(history), True, stopped))
    return FitResult(history, best_loss, len(history), stopped)

