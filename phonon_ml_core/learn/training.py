"""Training stages of the two-stage method (docs/training.md).

1. ``pretrain``: autoencoder on simulated spectra;
2. ``finetune``: autoencoder on measured spectra at a reduced learning rate (optional);
3. ``extended``: autoencoder on simulated spectra again, under the fine-tuning settings (optional);
4. ``regressor``: latent code → force constants on simulated labels (codes sampled from q(z|x) or
   their means), targets standardised internally.

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.grid import Grid
from phonon_ml_core.learn.networks import (DEFAULT_FAMILY, DEFAULT_KL_WEIGHT, DEFAULT_LATENT_DIM, ForceConstantRegressor,
                     SpectrumAutoencoder, build_autoencoder)
from phonon_ml_core.data.spectrum import Spectrum

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "phonon-ml-checkpoint"
CHECKPOINT_VERSION = 1
STAGES = ("pretrain", "finetune", "extended", "regressor", "physics", "physics-finetune")
#: The stages that train the autoencoder (the others train the regressor).
AUTOENCODER_STAGES = ("pretrain", "finetune", "extended")
DEFAULT_BACKGROUND_DEGREE = 3
#: The study's SGD learning rates (momentum 0.9).
SGD_LR = {"fcae": 10.0, "fcvae": 1.0, "cnnae": 1.0, "cnnvae": 1.0, "regressor": 0.05}
ADAM_LR = {"fcae": 1e-3, "fcvae": 1e-3, "cnnae": 1e-3, "cnnvae": 1e-3, "regressor": 1e-3}


@dataclass
class StageConfig:
    """Optimisation settings of one stage.

    Attributes:
        epochs: maximum number of passes over the training data.
        batch_size: spectra (or codes) per step.
        optimizer: "adam" (default, with cosine decay and early stopping) or "sgd" (the study's, momentum 0.9).
        lr: learning rate; None = the default for the optimiser and model (:data:`SGD_LR`, :data:`ADAM_LR`).
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        schedule: "cosine" (to 0 over ``epochs``) or "constant".
        patience: stop after this many epochs without validation improvement; None = never.
        val_fraction: fraction of the data held out for validation (none when fewer than 10 items).
        checkpoint_every: write the checkpoint every this many epochs (and at the end).
    """

    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    patience: int | None = 20
    val_fraction: float = 0.1
    checkpoint_every: int = 5

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if int(self.epochs) < 0 or int(self.batch_size) < 1 or int(self.checkpoint_every) < 1:
            raise ValueError("epochs must be ≥ 0, batch_size and checkpoint_every ≥ 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")

    def learning_rate(self, kind: str) -> float:
        """The configured learning rate, or the default for ``kind`` (a family or 'regressor')."""
        if self.lr is not None:
            return float(self.lr)
        return (SGD_LR if self.optimizer == "sgd" else ADAM_LR)[kind]


def study_stage_config(**kw: Any) -> StageConfig:
    """The study's optimiser: SGD, momentum 0.9, constant learning rate, no early stopping."""
    return StageConfig(**{"optimizer": "sgd", "schedule": "constant", "patience": None, **kw})


@dataclass
class PipelineConfig:
    """Everything that defines a training run (stored in the bundle).

    Attributes:
        family, latent_dim, kl_weight: the autoencoder (models.py).
        pretrain: settings of the pretraining stage (simulated spectra).
        finetune_epochs, extended_epochs: epochs of the fine-tuning (measured) and extended (simulated)
            stages; they reuse ``pretrain`` settings with the learning rate × ``finetune_lr_factor``.
        regressor: settings of the regressor stage.
        regressor_codes: "sample" (z ~ q(z|x), fresh each epoch; default: more robust on measured data) or "mean" (z = mu; better simulated R²), docs/training.md.
        augment_noise: on simulated stages, Gaussian pixel noise added to each input spectrum, in units of its
            span (measured data: ≈ 0.03–0.06); the reconstruction target stays the clean spectrum.
        augment_background: on simulated stages, a random residual background b1·(E − Ē), flat in |Q|, with
            |b1·(E_max − E_min)| uniform up to this many spans; inputs are then re-normalised.
        on_the_fly: when > 0, pretraining draws this many fresh spectra from the simulator every epoch
            (sampling ranges of the data set's metadata, seeded by epoch) instead of reusing the file's
            training split; validation still uses the file's held-out split.
        background_degree: the autoencoder sees spectra with their least-squares polynomial background of
            this total degree in (E, |Q|) removed (``SpectrumAutoencoder.model_space``); None = raw spectra.
        predict_linewidth: the regressor also predicts the intrinsic linewidth γ when the simulated set has
            γ labels that vary (its 6th output; a set simulated without a γ range has all-zero labels).
        physics_steps: optimiser steps of the ``physics`` stage (regressor through the simulator on simulated
            spectra, :mod:`phonon_ml_core.learn.consistency`); 0 = skip.
        physics_finetune_steps: steps of the ``physics-finetune`` stage on the measured spectra (when given
            and ``finetune_epochs`` > 0); 0 = skip.
        physics_batch: spectra per step of both physics stages.
        physics_lr: Adam learning rate of the ``physics`` stage (all regressor layers).
        physics_finetune_lr, physics_finetune_layers: learning rate of the ``physics-finetune`` stage and which
            regressor layers it trains: "last" (the output layer only, default: generalises to spectra left
            out of the fine-tuning) or "all".
        physics_background: both physics stages compare with a profiled residual background slope, as the
            fits do by default (:mod:`phonon_ml_core.fitting.residual_background`): the regressor is not pushed to
            mimic a smooth background with the force constants.
        regressor_temperature: the regressor also takes the sample temperature (K) as an input
            (:class:`~phonon_ml_core.learn.networks.ForceConstantRegressor` ``conditions``); predictions then need it.
        seed: seeds the weights, the split, the shuffling and the sampling.
    """

    family: str = DEFAULT_FAMILY
    latent_dim: int = DEFAULT_LATENT_DIM
    kl_weight: float = DEFAULT_KL_WEIGHT
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(epochs=200))
    finetune_epochs: int = 50
    extended_epochs: int = 50
    finetune_lr_factor: float = 0.1
    regressor: StageConfig = field(default_factory=lambda: StageConfig(epochs=300, batch_size=128, patience=30))
    regressor_codes: str = "sample"
    augment_noise: float = 0.0
    augment_background: float = 0.0
    on_the_fly: int = 0
    background_degree: int | None = DEFAULT_BACKGROUND_DEGREE
    predict_linewidth: bool = True
    physics_steps: int = 0
    physics_finetune_steps: int = 100
    physics_batch: int = 32
    physics_lr: float = 3e-5
    physics_finetune_lr: float = 3e-4
    physics_finetune_layers: str = "last"
    physics_background: bool = True
    regressor_temperature: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.regressor_codes not in ("sample", "mean"):
            raise ValueError(f"regressor_codes must be 'sample' or 'mean', got {self.regressor_codes!r}")
        if int(self.on_the_fly) < 0:
            raise ValueError("on_the_fly must be ≥ 0 (spectra simulated per epoch)")
        if not (self.augment_noise >= 0 and self.augment_background >= 0):
            raise ValueError("augment_noise and augment_background must be ≥ 0")
        if self.background_degree is not None and not 0 <= int(self.background_degree) <= 6:
            raise ValueError(f"background_degree must be 0–6 or None, got {self.background_degree}")
        if int(self.physics_steps) < 0 or int(self.physics_finetune_steps) < 0 or int(self.physics_batch) < 1:
            raise ValueError("physics_steps and physics_finetune_steps must be ≥ 0 and physics_batch ≥ 1")
        if not (self.physics_lr > 0 and self.physics_finetune_lr > 0):
            raise ValueError("physics_lr and physics_finetune_lr must be positive")
        if self.physics_finetune_layers not in ("last", "all"):
            raise ValueError(f"physics_finetune_layers must be 'last' or 'all', got {self.physics_finetune_layers!r}")
        if not 0 < self.finetune_lr_factor <= 1:
            raise ValueError(f"finetune_lr_factor must be in (0, 1], got {self.finetune_lr_factor}")

    def finetune_stage(self, epochs: int) -> StageConfig:
        """Pretraining settings with the reduced learning rate and ``epochs``."""
        lr = self.pretrain.learning_rate(self.family) * self.finetune_lr_factor
        return replace(self.pretrain, lr=lr, epochs=epochs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PipelineConfig":
        d = dict(d)
        d.setdefault("background_degree", None)  # configs written before the option existed: raw spectra
        d.setdefault("predict_linewidth", False)
        d["pretrain"] = StageConfig(**d.get("pretrain", {}))
        d["regressor"] = StageConfig(**d.get("regressor", {}))
        return cls(**d)


# --------------------------------------------------------------------------- data
def spectra_tensor(spectra: Spectrum, grid: Grid | None = None, what: str = "data set") -> tuple[torch.Tensor, np.ndarray]:
    """Mean-normalised float32 tensor (N, n_E, n_Q) and the indices kept.

    Spectra whose valid pixels are all NaN (e.g. unstable simulated sets) are dropped; an empty or
    all-NaN set, or one on another grid than ``grid``, raises ValueError.
    """
    if grid is not None and not spectra.grid.same_as(grid):
        raise ValueError(f"the {what} is on a different grid (shape {spectra.grid.shape}, mask hash "
                         f"{spectra.grid.mask_hash()[:12]}) than expected (shape {grid.shape}, mask hash "
                         f"{grid.mask_hash()[:12]}): preprocess it onto the training grid first")
    x = np.asarray(spectra.intensity, dtype=float).reshape(-1, *spectra.grid.shape)
    if x.shape[0] == 0:
        raise ValueError(f"the {what} holds no spectrum")
    valid = x[:, spectra.grid.mask]
    keep = np.where(np.isfinite(valid).any(-1))[0]
    if keep.size == 0:
        raise ValueError(f"every spectrum of the {what} is NaN on the valid pixels: nothing to train on")
    x, valid = x[keep], valid[keep]
    if spectra.normalization != "mean":
        vmean = np.nanmean(valid, -1, keepdims=True)
        span = np.nanmax(valid, -1, keepdims=True) - np.nanmin(valid, -1, keepdims=True)
        if np.any(span <= 0):
            raise ValueError(f"a spectrum of the {what} is constant on the valid pixels; it cannot be normalised")
        valid = (valid - vmean) / span
    out = np.full(x.shape, np.nan, dtype=np.float32)
    out[:, spectra.grid.mask] = valid
    return torch.from_numpy(out), keep


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split; no validation set below 10 items."""
    n_val = int(round(n * val_fraction)) if n >= 10 else 0
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, shape (n_outputs,)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    return 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)


# --------------------------------------------------------------------------- checkpoints
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


def _evaluate(model: torch.nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, ...], batch: int) -> float:
    model.eval()
    n = data[0].shape[0]
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            part = tuple(t[i:i + batch] for t in data)
            total += float(loss_fn(model, part, None)["loss"]) * part[0].shape[0]
    return total / n


def fit(model: torch.nn.Module, loss_fn: LossFn,
        train: tuple[torch.Tensor, ...] | Callable[[int], tuple[torch.Tensor, ...]],
        val: tuple[torch.Tensor, ...] | None, cfg: StageConfig, lr: float, *, stage: str, seed: int,
        checkpoint: Path | None = None, resume: bool = False, signature: dict[str, Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None, progress: bool = True) -> FitResult:
    """Minimise ``loss_fn`` over mini-batches of ``train``; validation, early stopping, checkpoints.

    ``loss_fn(model, batch, generator)`` returns a dict with a scalar 'loss' (and optional scalars).
    ``train`` may be a function of the epoch index returning that epoch's tensors (on-the-fly data).
    With a validation set the best-validation weights are restored at the end. ``on_epoch`` sees each
    epoch record (a test may raise from it to simulate an interruption).
    """
    gen = torch.Generator().manual_seed(int(seed))
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
    bar = tqdm(range(start, cfg.epochs), desc=stage, disable=not progress, leave=False, initial=start,
               total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        if source is not None:
            train = source(epoch)
        n = train[0].shape[0]
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            out = loss_fn(model, tuple(t[idx] for t in train), gen)
            if not torch.isfinite(out["loss"]):
                raise ValueError(f"{stage}: the loss became {float(out['loss'])} at epoch {epoch + 1}; "
                                 "lower the learning rate (--lr) or use --optimizer adam")
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * idx.numel()
        rec: dict[str, Any] = {"stage": stage, "epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
        rec.update({f"train_{k}": v / n for k, v in sums.items()})
        if sched is not None:
            sched.step()
        monitor = rec["train_loss"]
        if val is not None and val[0].shape[0] > 0:
            rec["val_loss"] = monitor = _evaluate(model, loss_fn, val, max(cfg.batch_size, 256))
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
        if checkpoint is not None and not last and (epoch + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(checkpoint, state(epoch + 1, False, False))
        if on_epoch is not None:
            on_epoch(rec)
        if stopped:
            log.info("%s: early stop after epoch %d (no improvement for %d epochs)", stage, epoch + 1, bad)
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if checkpoint is not None:
        save_checkpoint(checkpoint, state(len(history), True, stopped))
    return FitResult(history, best_loss, len(history), stopped)


# --------------------------------------------------------------------------- stage losses
def autoencoder_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...],
                     gen: torch.Generator | None) -> dict[str, torch.Tensor]:
    """Reconstruction (+ KL) loss of a batch of spectra."""
    return model.loss(batch[0], generator=gen)


def augmented_autoencoder_loss(noise: float, background: float, mask: np.ndarray,
                               energy: np.ndarray) -> LossFn:
    """Denoising loss: the input is the spectrum with pixel noise and a residual background slope added and
    re-normalised; the target is the clean spectrum (nuisance variation of measured data, issue 4)."""
    from phonon_ml_core.data.normalization import mean_normalize

    if noise == 0 and background == 0:
        return autoencoder_loss
    m = torch.as_tensor(np.array(mask, dtype=bool))
    e = torch.as_tensor(np.array(energy, dtype=float), dtype=torch.float32)
    ramp = ((e - e[m.any(1)].mean()) / float(np.ptp(energy) or 1.0))[:, None]  # (n_E, 1), span 1

    def fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator | None):
        x = batch[0]
        if gen is None:  # validation: the clean loss, so early stopping is deterministic
            return model.loss(x)
        b = x.shape[0]
        slope = (torch.rand((b, 1, 1), generator=gen) * 2 - 1) * background
        noisy = x + noise * torch.randn(x.shape, generator=gen) + slope * ramp
        noisy = mean_normalize(torch.where(m, noisy, torch.full_like(noisy, float("nan"))), np.asarray(mask))
        return model.loss(noisy, generator=gen, target=x)
    return fn


def simulator_source(simulated: Spectrum, n: int, seed: int, batch: int = 8) -> Callable[[int], tuple[torch.Tensor]]:
    """Fresh simulated spectra each epoch, drawn like the data set ``simulated`` (its sampling metadata).

    Returns ``draw(epoch) -> (x,)`` with x (n, n_E, n_Q) mean-normalised float32; deterministic per epoch.
    """
    from phonon_ml_core.simulator.dataset import SamplingConfig, sample_parameters
    from phonon_ml_core.simulator import PowderSimulator, SimulationSettings

    meta = dict(simulated.metadata.get("sampling") or {})
    for key in ("relative_range", "temperature_range", "linewidth_range"):
        if meta.get(key) is not None:
            meta[key] = tuple(meta[key])
    meta["absolute_ranges"] = {k: tuple(v) for k, v in (meta.get("absolute_ranges") or {"2YY": (-1.0, 1.0)}).items()}
    base = SamplingConfig(**meta) if meta else SamplingConfig()
    sim_settings = (simulated.metadata.get("simulator") or {}).get("settings") or {}
    sim = PowderSimulator(grid=simulated.grid, settings=SimulationSettings(**sim_settings) if sim_settings else None)

    def draw(epoch: int) -> tuple[torch.Tensor]:
        p = sample_parameters(n, replace(base, seed=int(seed) * 100_003 + epoch))
        lw = p.linewidth if base.linewidth_range is not None else None
        out = []
        with torch.no_grad():
            for i in range(0, n, batch):
                out.append(sim(p.force_constants[i:i + batch], p.temperature[i:i + batch],
                               linewidth=None if lw is None else lw[i:i + batch]).float())
        return (torch.cat(out),)
    return draw


def regressor_loss(sample: bool) -> LossFn:
    """MSE on standardised targets; batch = (mu, logvar, y) or (mu, logvar, T, y) for a regressor conditioned on
    the temperature T (K). Codes are drawn from q(z|x) when ``sample``."""
    def fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator | None):
        mu, logvar, *cond, y = batch      # (mu, logvar, [T,] y): T (K) for a temperature-conditioned regressor
        z = mu
        if sample and gen is not None:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
        return {"loss": torch.mean((model(z, *cond) - y) ** 2)}
    return fn


@torch.no_grad()
def encode_all(model: SpectrumAutoencoder, x: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances (B, latent) of all spectra; logvar = −30 (no spread) for plain AEs."""
    model.eval()
    mus, lvs = [], []
    for i in range(0, x.shape[0], batch):
        mu, lv = model.encode(x[i:i + batch])
        mus.append(mu)
        lvs.append(torch.full_like(mu, -30.0) if lv is None else lv)
    return torch.cat(mus), torch.cat(lvs)


# --------------------------------------------------------------------------- pipeline
@dataclass
class TrainingResult:
    """Trained networks, target standardisation, history and validation metrics."""

    autoencoder: SpectrumAutoencoder
    regressor: ForceConstantRegressor
    target_mean: np.ndarray
    target_std: np.ndarray
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    config: PipelineConfig
    seconds: dict[str, float]


def write_log(history: list[dict[str, Any]], path: Path) -> None:
    """Training log, one JSON object per epoch (written atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Loss curves per stage (training solid, validation dashed), log scale, PNG via Agg."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if any(r["stage"] == s for r in history)]
    fig, axes = plt.subplots(1, max(len(stages), 1), figsize=(4 * max(len(stages), 1), 3.2), squeeze=False)
    for ax, s in zip(axes[0], stages):
        rows = [r for r in history if r["stage"] == s]
        ep = [r["epoch"] for r in rows]
        ax.plot(ep, [r["train_loss"] for r in rows], label="train")
        if any("val_loss" in r for r in rows):
            ax.plot(ep, [r.get("val_loss", np.nan) for r in rows], "--", label="validation")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(s)
        ax.legend()
    axes[0][0].set_ylabel("loss (AE: MSE + KL·w; regressor: MSE of z-scores)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def train_pipeline(simulated: Spectrum, config: PipelineConfig | None = None, measured: Spectrum | None = None,
                   workdir: str | Path | None = None, resume: bool = False, progress: bool = True,
                   on_epoch: Callable[[dict[str, Any]], None] | None = None) -> TrainingResult:
    """Run all stages. ``workdir`` receives stage checkpoints, ``training_log.jsonl`` and ``loss_curve.png``.

    Args:
        simulated: labelled simulated set (force_constants (N, 5), N/m).
        config: settings (defaults = recommended).
        measured: measured spectra for fine-tuning (same grid), or None to skip fine-tuning and extended stages.
        workdir: folder for checkpoints and logs (created), None = no checkpoints.
        resume: continue from the checkpoints in ``workdir``.
    """
    cfg = config or PipelineConfig()
    grid = simulated.grid
    if simulated.force_constants is None:
        raise ValueError("the simulated data set has no force_constants: the regressor needs labelled spectra "
                         "(make one with `phonon-ml simulate --count N`)")
    x, keep = spectra_tensor(simulated, None, "simulated data set")
    y = np.broadcast_to(np.asarray(simulated.force_constants, float), (simulated.n_spectra, 5))
    if cfg.predict_linewidth and simulated.linewidth is not None and np.ptp(simulated.linewidths()) > 0:
        y = np.concatenate([y, simulated.linewidths()[:, None]], axis=1)
    y = y[keep]
    if not np.all(np.isfinite(y)):
        raise ValueError("the simulated data set has non-finite force constants")
    temps = simulated.temperatures()[keep]
    if cfg.regressor_temperature and not np.all(np.isfinite(temps) & (temps > 0)):
        raise ValueError("regressor_temperature needs the temperature of every simulated spectrum; the set lacks "
                         "some (regenerate it with `phonon-ml simulate`)")
    if keep.size < simulated.n_spectra:
        log.warning("dropped %d simulated spectra that are NaN everywhere (unstable sets)",
                    simulated.n_spectra - keep.size)
    xm = None
    if measured is not None:
        xm, keep_m = spectra_tensor(measured, grid, "measured set for fine-tuning")
    wd = None if workdir is None else Path(workdir)
    if wd is not None:
        wd.mkdir(parents=True, exist_ok=True)
    tr, va = split_indices(x.shape[0], cfg.pretrain.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    ae = build_autoencoder(cfg.family, grid.mask, cfg.latent_dim, cfg.kl_weight,
                           background_degree=cfg.background_degree)
    history: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    sig = {"family": cfg.family, "latent_dim": cfg.latent_dim, "kl_weight": cfg.kl_weight, "seed": cfg.seed,
           "augment": [cfg.augment_noise, cfg.augment_background], "on_the_fly": int(cfg.on_the_fly),
           "background_degree": cfg.background_degree, "targets": int(y.shape[1]),
           "grid": grid.mask_hash(), "n_data": int(x.shape[0]),
           "data_checksum": float(np.nansum(x[: min(64, x.shape[0])].numpy(), dtype=np.float64))}

    # settings that change only the regressor's stages (a resume of the autoencoder stages stays valid)
    reg_sig = {**sig, "regressor_temperature": bool(cfg.regressor_temperature),
               "physics_background": bool(cfg.physics_background)}

    def after(rec: dict[str, Any]) -> None:
        history.append(rec)
        if wd is not None:
            write_log(history, wd / "training_log.jsonl")
        if on_epoch is not None:
            on_epoch(rec)

    def run_stage(name: str, model: torch.nn.Module, loss_fn: LossFn, train, val, scfg: StageConfig,
                  lr: float, offset: int) -> FitResult:
        t0 = time.perf_counter()
        ck = None if wd is None else wd / f"{name}.pt"
        n_before = len(history)
        res = fit(model, loss_fn, train, val, scfg, lr, stage=name, seed=cfg.seed * 1000 + offset,
                  checkpoint=ck, resume=resume, signature=sig if name in AUTOENCODER_STAGES else reg_sig,
                  on_epoch=after, progress=progress)
        del history[n_before:]   # the stage's own history is authoritative (it includes resumed epochs)
        history.extend(res.history)
        seconds[name] = time.perf_counter() - t0
        return res

    xv = (x[va],) if va.size else None
    sim_loss = augmented_autoencoder_loss(cfg.augment_noise, cfg.augment_background, grid.mask, grid.energy)
    pre_train = simulator_source(simulated, int(cfg.on_the_fly), cfg.seed) if cfg.on_the_fly else (x[tr],)
    if cfg.pretrain.epochs > 0:
        run_stage("pretrain", ae, sim_loss, pre_train, xv, cfg.pretrain,
                  cfg.pretrain.learning_rate(cfg.family), 1)
    if xm is not None and cfg.finetune_epochs > 0:
        fcfg = cfg.finetune_stage(cfg.finetune_epochs)
        fcfg = replace(fcfg, batch_size=min(fcfg.batch_size, xm.shape[0]))
        run_stage("finetune", ae, autoencoder_loss, (xm,), None, fcfg, fcfg.learning_rate(cfg.family), 2)
        if cfg.extended_epochs > 0:
            ecfg = cfg.finetune_stage(cfg.extended_epochs)
            run_stage("extended", ae, sim_loss, (x[tr],), xv, ecfg, ecfg.learning_rate(cfg.family), 3)
    for p in ae.parameters():
        p.requires_grad_(False)
    ae.eval()
    mu, lv = encode_all(ae, x)
    y_mean = y[tr].mean(0)
    y_std = y[tr].std(0)
    y_std = np.where(y_std > 0, y_std, 1.0)
    ys = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32)
    torch.manual_seed(cfg.seed + 7)
    reg = ForceConstantRegressor(cfg.latent_dim, n_outputs=y.shape[1],
                                 conditions=("temperature",) if cfg.regressor_temperature else ())
    rcfg = cfg.regressor
    tt = torch.as_tensor(temps, dtype=torch.float32)
    cond = (lambda idx: (tt[idx],)) if cfg.regressor_temperature else (lambda idx: ())
    rv = (mu[va], lv[va], *cond(va), ys[va]) if va.size else None
    run_stage("regressor", reg, regressor_loss(cfg.regressor_codes == "sample" and ae.variational),
              (mu[tr], lv[tr], *cond(tr), ys[tr]), rv, rcfg, rcfg.learning_rate("regressor"), 4)
    physics = [("physics", int(cfg.physics_steps), mu[tr], x[tr], temps[tr], simulated, 5)]
    if xm is not None and cfg.finetune_epochs > 0 and cfg.physics_finetune_steps > 0:
        tm = measured.temperatures()[keep_m]
        if np.all(np.isfinite(tm) & (tm > 0)):
            physics.append(("physics-finetune", int(cfg.physics_finetune_steps), encode_all(ae, xm)[0], xm, tm,
                            simulated, 6))
        else:
            log.warning("physics-finetune stage skipped: it needs the temperature of every measured spectrum "
                        "(set it when preprocessing, --temperature)")
    for name, steps, mu_s, x_s, t_s, source_set, offset in physics:
        if steps <= 0:
            continue
        if not np.all(np.isfinite(t_s) & (t_s > 0)):
            raise ValueError(f"the {name} stage needs the temperature of every spectrum; the simulated set lacks "
                             "some (regenerate it with `phonon-ml simulate`) or pass physics_steps=0")
        from phonon_ml_core.learn.consistency import consistency_loss, consistency_stage, temperature_window_source

        sim = physics_simulator(source_set)
        lr = cfg.physics_lr if name == "physics" else cfg.physics_finetune_lr
        pcfg = consistency_stage(reg, steps, cfg.physics_batch, lr,
                                 "all" if name == "physics" else cfg.physics_finetune_layers)
        run_stage(name, reg, consistency_loss(sim, y_mean, y_std, bool(cfg.physics_background)),
                  temperature_window_source(mu_s, x_s, t_s, int(cfg.physics_batch), cfg.seed + offset), None, pcfg,
                  lr, offset)
    reg.eval()
    for p in reg.parameters():
        p.requires_grad_(False)
    metrics = evaluate(ae, reg, x, y, y_mean, y_std, tr, va, temps)
    if wd is not None:
        write_log(history, wd / "training_log.jsonl")
        plot_history(history, wd / "loss_curve.png")
    return TrainingResult(ae, reg, y_mean, y_std, history, metrics, cfg, seconds)


def physics_simulator(simulated: Spectrum):
    """The simulator of the physics stages: the data set's own settings (its metadata), float32."""
    from phonon_ml_core.learn.consistency import consistency_simulator

    return consistency_simulator(simulated.grid, simulated.quantity, simulated.metadata)


@torch.no_grad()
def evaluate(ae: SpectrumAutoencoder, reg: ForceConstantRegressor, x: torch.Tensor, y: np.ndarray,
             y_mean: np.ndarray, y_std: np.ndarray, tr: np.ndarray, va: np.ndarray,
             temperature: np.ndarray | None = None) -> dict[str, Any]:
    """Reconstruction MSE and per-constant R² (from mean codes) on the training and validation splits."""
    from phonon_ml_core.physics.units import FORCE_CONSTANT_NAMES

    out: dict[str, Any] = {}
    for name, idx in (("train", tr), ("validation", va)):
        if idx.size == 0:
            continue
        ae.eval()
        xs = x[idx]
        mse = sum(float(ae.loss(xs[i:i + 256])["mse"]) * xs[i:i + 256].shape[0]
                  for i in range(0, xs.shape[0], 256)) / xs.shape[0]
        mu, _ = encode_all(ae, xs)
        t = None if temperature is None else torch.as_tensor(np.asarray(temperature, float)[idx], dtype=mu.dtype)
        pred = reg(mu, t).numpy() * y_std + y_mean
        r2 = r2_score(y[idx], pred)
        names = list(FORCE_CONSTANT_NAMES) + ["linewidth"] * (y.shape[1] > 5)
        out[name] = {"n": int(idx.size), "reconstruction_mse": mse,
                     "r2": {k: (float(v) if np.isfinite(v) else None) for k, v in zip(names, r2)},
                     "rmse_n_per_m": {k: float(v) for k, v in
                                      zip(FORCE_CONSTANT_NAMES, np.sqrt(((pred - y[idx]) ** 2).mean(0)))}}
    return out
