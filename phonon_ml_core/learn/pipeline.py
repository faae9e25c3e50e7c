"""The training pipeline (docs/training.md): all stages in order, from a simulated set to trained networks.

1. ``pretrain``: autoencoder on simulated spectra;
2. ``finetune``: autoencoder on measured spectra at a reduced learning rate (optional);
3. ``extended``: autoencoder on simulated spectra again, under the fine-tuning settings (optional);
4. ``regressor``: latent code → named targets (the material's constants, and γ when learned) on simulated
   labels (codes sampled from q(z|x) or their means), targets standardised internally;
5. ``physics`` / ``physics-finetune``: the regressor through the simulator (:mod:`.consistency`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.configs import AUTOENCODER_STAGES, PipelineConfig, StageConfig
from phonon_ml_core.learn import distributed
from phonon_ml_core.learn.consistency import (TemperatureInvariance, consistency_loss, consistency_simulator,
                                              consistency_stage, second_temperature_spectra,
                                              temperature_window_source)
from phonon_ml_core.learn.history import plot_history, write_log
from phonon_ml_core.learn.inputs import spectra_tensor, split_indices
from phonon_ml_core.learn.losses import (augmented_autoencoder_loss, autoencoder_loss, encode_all,
                                         latent_invariance_loss, regressor_loss, simulator_source)
from phonon_ml_core.learn.loop import FitResult, LossFn, fit
from phonon_ml_core.learn.matching import check_matches, spectrum_experiment, spectrum_material
from phonon_ml_core.learn.metrics import evaluate
from phonon_ml_core.learn.networks import ForceConstantRegressor, SpectrumAutoencoder, build_autoencoder
from phonon_ml_core.learn.targets import Targets, training_targets
from phonon_ml_core.specs import Experiment, Material

log = logging.getLogger(__name__)


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
    targets: Targets
    material: Material
    experiment: Experiment


def train_pipeline(simulated: Spectrum, config: PipelineConfig | None = None, measured: Spectrum | None = None,
                   workdir: str | Path | None = None, resume: bool = False, progress: bool = True,
                   on_epoch: Callable[[dict[str, Any]], None] | None = None,
                   device: str = "cpu", extractor_data: torch.Tensor | None = None,
                   autoencoder: SpectrumAutoencoder | None = None) -> TrainingResult:
    """Run all stages. ``workdir`` receives stage checkpoints, ``training_log.jsonl`` and ``loss_curve.png``.

    Args:
        simulated: labelled simulated set (force_constants (N, n_constants), N/m, in its material's order); its
            material and experiment (aluminium / the standard settings when it records none) are the model's.
        config: settings (defaults = recommended).
        measured: measured spectra for fine-tuning (same grid, same material and experiment), or None to skip
            fine-tuning and extended stages.
        workdir: folder for checkpoints and logs (created), None = no checkpoints.
        resume: continue from the checkpoints in ``workdir``.
        device: torch device of the autoencoder and regressor stages (their random draws included); the physics
            stages (through the CPU simulator) and the returned networks are on the CPU.
        extractor_data: the spectra the autoencoder is pretrained on instead of ``simulated``'s (N, n_E, n_Q),
            mean-normalised on ``simulated``'s mask: a feature extractor shared by several materials
            (:mod:`.mixed`); the regressor still learns ``simulated``'s constants.
        autoencoder: an already trained feature extractor on ``simulated``'s mask: the autoencoder stages are
            skipped and only the regressor (and physics) stages run.
    """
    cfg = config or PipelineConfig()
    grid = simulated.grid
    material, experiment = spectrum_material(simulated, "simulated data set"), spectrum_experiment(simulated)
    x, keep = spectra_tensor(simulated, None, "simulated data set")
    targets, y = training_targets(simulated, material, keep, cfg.predict_linewidth)
    temps = simulated.temperatures()[keep]
    if cfg.regressor_temperature and not np.all(np.isfinite(temps) & (temps > 0)):
        raise ValueError("regressor_temperature needs the temperature of every simulated spectrum; the set lacks "
                         "some (regenerate it with `phonon-ml simulate`)")
    latent_pairs = cfg.latent_temperature_invariance > 0 and cfg.pretrain.epochs > 0 and autoencoder is None
    if latent_pairs and (cfg.on_the_fly or extractor_data is not None):
        raise ValueError("latent_temperature_invariance pairs the training set's own spectra: it cannot be combined "
                         "with on_the_fly pretraining or a shared extractor_data set (set one of them to off)")
    if latent_pairs and not (np.all(np.isfinite(temps) & (temps > 0)) and np.ptp(temps) > 0):
        raise ValueError("latent_temperature_invariance needs a simulated set spanning temperatures (every spectrum's "
                         "T known; `phonon-ml simulate --temperature-range LO,HI`)")
    if keep.size < simulated.n_spectra:
        log.warning("dropped %d simulated spectra that are NaN everywhere (unstable sets)",
                    simulated.n_spectra - keep.size)
    xm = None
    if measured is not None:
        check_matches(material, experiment, measured, "the simulated training set", "the fine-tuning spectra",
                      "fine-tune on spectra of the training set's material and experiment, or simulate a training "
                      "set for theirs")
        xm, keep_m = spectra_tensor(measured, grid, "measured set for fine-tuning")
    wd = None if workdir is None else Path(workdir)
    writes = distributed.is_main()  # under torchrun, rank 0 alone writes logs and checkpoints
    if wd is not None:
        wd.mkdir(parents=True, exist_ok=True)
    tr, va = split_indices(x.shape[0], cfg.pretrain.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    shared = autoencoder is not None
    if shared and not np.array_equal(autoencoder.mask.numpy(), grid.mask):
        raise ValueError("the shared feature extractor was trained on another mask than this data set's grid: put "
                         "every set on the common mask first (learn.mixed)")
    ae = autoencoder if shared else build_autoencoder(cfg.family, grid.mask, cfg.latent_dim, cfg.kl_weight,
                                                      background_degree=cfg.background_degree)
    x_pre = x if extractor_data is None else extractor_data
    tr_pre, va_pre = (tr, va) if extractor_data is None else \
        split_indices(x_pre.shape[0], cfg.pretrain.val_fraction, cfg.seed)
    history: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    sig = {"family": cfg.family, "latent_dim": cfg.latent_dim, "kl_weight": cfg.kl_weight, "seed": cfg.seed,
           "augment": [cfg.augment_noise, cfg.augment_background], "on_the_fly": int(cfg.on_the_fly),
           "background_degree": cfg.background_degree, "targets": list(targets.names),
           "grid": grid.mask_hash(), "n_data": int(x.shape[0]),
           "data_checksum": float(np.nansum(x[: min(64, x.shape[0])].numpy(), dtype=np.float64))}
    if latent_pairs:
        sig["latent_temperature_invariance"] = float(cfg.latent_temperature_invariance)
    if extractor_data is not None:
        sig["extractor_data"] = [int(x_pre.shape[0]), float(np.nansum(x_pre[:64].numpy(), dtype=np.float64))]

    # settings that change only the regressor's stages (a resume of the autoencoder stages stays valid)
    reg_sig = {**sig, "regressor_temperature": bool(cfg.regressor_temperature),
               "physics_background": bool(cfg.physics_background),
               "temperature_invariance": float(cfg.temperature_invariance)}

    def after(rec: dict[str, Any]) -> None:
        history.append(rec)
        if wd is not None and writes:
            write_log(history, wd / "training_log.jsonl")
        if on_epoch is not None:
            on_epoch(rec)

    def run_stage(name: str, model: torch.nn.Module, loss_fn: LossFn, train, val, scfg: StageConfig,
                  lr: float, offset: int, stage_device: str = "cpu") -> FitResult:
        t0 = time.perf_counter()
        ck = None if wd is None else wd / f"{name}.pt"
        n_before = len(history)
        res = fit(model, loss_fn, train, val, scfg, lr, stage=name, seed=cfg.seed * 1000 + offset,
                  checkpoint=ck, resume=resume, signature=sig if name in AUTOENCODER_STAGES else reg_sig,
                  on_epoch=after, progress=progress, device=stage_device)
        del history[n_before:]   # the stage's own history is authoritative (it includes resumed epochs)
        history.extend(res.history)
        seconds[name] = time.perf_counter() - t0
        return res

    xv = (x[va],) if va.size else None
    sim_loss = augmented_autoencoder_loss(cfg.augment_noise, cfg.augment_background, grid.mask, grid.energy)
    pre_train = (simulator_source(simulated, int(cfg.on_the_fly), cfg.seed, material, experiment)
                 if cfg.on_the_fly else (x_pre[tr_pre],))
    pre_loss = sim_loss
    if latent_pairs:  # the same constants and γ at a second temperature, for the latent invariance penalty
        t0 = time.perf_counter()
        fc_all = np.asarray(simulated.force_constants, float).reshape(simulated.n_spectra, -1)[keep][tr]
        lw = simulated.linewidths()
        x2 = second_temperature_spectra(physics_simulator(simulated), fc_all, None if lw is None else lw[keep][tr],
                                        (float(np.min(temps)), float(np.max(temps))), cfg.seed + 11)
        seconds["latent pairs"] = time.perf_counter() - t0
        pre_train, pre_loss = (x[tr], x2), latent_invariance_loss(sim_loss, cfg.latent_temperature_invariance)
    if cfg.pretrain.epochs > 0 and not shared:
        run_stage("pretrain", ae, pre_loss, pre_train, (x_pre[va_pre],) if va_pre.size else None, cfg.pretrain,
                  cfg.pretrain.learning_rate(cfg.family), 1, device)
    if xm is not None and cfg.finetune_epochs > 0 and not shared:
        fcfg = cfg.finetune_stage(cfg.finetune_epochs)
        fcfg = replace(fcfg, batch_size=min(fcfg.batch_size, xm.shape[0]))
        run_stage("finetune", ae, autoencoder_loss, (xm,), None, fcfg, fcfg.learning_rate(cfg.family), 2, device)
        if cfg.extended_epochs > 0:
            ecfg = cfg.finetune_stage(cfg.extended_epochs)
            run_stage("extended", ae, sim_loss, (x[tr],), xv, ecfg, ecfg.learning_rate(cfg.family), 3, device)
    ae.to("cpu")
    for p in ae.parameters():
        p.requires_grad_(False)
    ae.eval()
    mu, lv = encode_all(ae, x)
    y_mean = y[tr].mean(0)
    y_std = y[tr].std(0)
    y_std = np.where(y_std > 0, y_std, 1.0)
    ys = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32)
    torch.manual_seed(cfg.seed + 7)
    reg = ForceConstantRegressor(cfg.latent_dim, n_outputs=targets.n_outputs,
                                 conditions=("temperature",) if cfg.regressor_temperature else ())
    rcfg = cfg.regressor
    tt = torch.as_tensor(temps, dtype=torch.float32)
    cond = (lambda idx: (tt[idx],)) if cfg.regressor_temperature else (lambda idx: ())
    rv = (mu[va], lv[va], *cond(va), ys[va]) if va.size else None
    run_stage("regressor", reg, regressor_loss(cfg.regressor_codes == "sample" and ae.variational),
              (mu[tr], lv[tr], *cond(tr), ys[tr]), rv, rcfg, rcfg.learning_rate("regressor"), 4, device)
    reg.to("cpu")  # the physics stages and the bundle: on the CPU
    physics = [("physics", int(cfg.physics_steps), mu[tr], x[tr], temps[tr], 5)]
    if xm is not None and cfg.finetune_epochs > 0 and cfg.physics_finetune_steps > 0:
        tm = measured.temperatures()[keep_m]
        if np.all(np.isfinite(tm) & (tm > 0)):
            physics.append(("physics-finetune", int(cfg.physics_finetune_steps), encode_all(ae, xm)[0], xm, tm, 6))
        else:
            log.warning("physics-finetune stage skipped: it needs the temperature of every measured spectrum "
                        "(set it when preprocessing, --temperature)")
    for name, steps, mu_s, x_s, t_s, offset in physics:
        if steps <= 0:
            continue
        if not np.all(np.isfinite(t_s) & (t_s > 0)):
            raise ValueError(f"the {name} stage needs the temperature of every spectrum; the simulated set lacks "
                             "some (regenerate it with `phonon-ml simulate`) or pass physics_steps=0")
        sim = physics_simulator(simulated)
        lr = cfg.physics_lr if name == "physics" else cfg.physics_finetune_lr
        pcfg = consistency_stage(reg, steps, cfg.physics_batch, lr,
                                 "all" if name == "physics" else cfg.physics_finetune_layers)
        inv = invariance_penalty(cfg, name, sim, ae, targets, temps[tr])
        run_stage(name, reg, consistency_loss(sim, y_mean, y_std, targets, bool(cfg.physics_background), inv),
                  temperature_window_source(mu_s, x_s, t_s, int(cfg.physics_batch), cfg.seed + offset,
                                            None if inv is None else y[tr]), None, pcfg, lr, offset)
    reg.eval()
    for p in reg.parameters():
        p.requires_grad_(False)
    metrics = evaluate(ae, reg, x, y, y_mean, y_std, tr, va, targets, temps)
    if wd is not None and writes:
        write_log(history, wd / "training_log.jsonl")
        plot_history(history, wd / "loss_curve.png")
    return TrainingResult(ae, reg, y_mean, y_std, history, metrics, cfg, seconds, targets, material, experiment)


def physics_simulator(simulated: Spectrum):
    """The simulator of the physics stages: the data set's material, experiment and settings (its metadata)."""
    return consistency_simulator(simulated.grid, simulated.quantity, simulated.metadata,
                                 spectrum_material(simulated), spectrum_experiment(simulated))


def invariance_penalty(cfg: PipelineConfig, stage: str, sim, ae: SpectrumAutoencoder, targets: Targets,
                       temps: np.ndarray) -> TemperatureInvariance | None:
    """The temperature-invariance penalty of the ``physics`` stage on simulated spectra (labels needed), or None
    (weight 0, or the ``physics-finetune`` stage on unlabelled measured spectra)."""
    if stage != "physics" or not cfg.temperature_invariance > 0:
        return None
    return TemperatureInvariance(cfg.temperature_invariance, sim, ae, targets,
                                 (float(np.min(temps)), float(np.max(temps))))
