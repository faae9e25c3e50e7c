"""Adapt a trained bundle to measured spectra without any simulated data (``phonon-ml finetune``).

The autoencoder stays frozen; the regressor is trained through the differentiable simulator so that the
spectra simulated from its predictions (constants and γ) match the measured ones
(:mod:`phonon_ml_core.learn.consistency`, the ``physics-finetune`` stage of :func:`train_pipeline`). It needs
only the measured spectra and their temperatures, so a user of the shipped bundle can adapt it to an
instrument or sample in a minute on a laptop. Predictions for the spectra used in the adaptation are
then fitted, not predicted: judge generalisation on spectra left out (``phonon-ml evaluate`` reports the
leave-one-out NMSE).
"""
from __future__ import annotations

import copy
from dataclasses import replace
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.bundle import Bundle
from phonon_ml_core.learn.ensemble import EnsembleBundle
from phonon_ml_core.learn.consistency import (consistency_loss, consistency_simulator, consistency_stage,
                                              temperature_window_source)
from phonon_ml_core.learn.inputs import spectra_tensor
from phonon_ml_core.learn.loop import fit
from phonon_ml_core.learn.matching import check_matches, is_measurement, is_richer_model


def adaptation_inputs(bundle: Bundle, spectra: Spectrum | list[Spectrum]) -> tuple[Spectrum, int | None]:
    """The spectra an adaptation of ``bundle`` learns from, as one set, and the number of shells of the richer model
    they were simulated with (None for measured spectra).

    Spectra of the bundle's material (or recording none) are taken as they are; spectra simulated with a richer model
    of the same crystal (more neighbour shells, :func:`~phonon_ml_core.learn.matching.is_richer_model`) lose their
    labels and material: under the bundle's model their misfit is model error, and the regressor learns to give the
    constants that fit them best (model-error adaptation, docs/training.md). Any other material, or another
    experiment, is refused with the reason."""
    parts = [spectra] if isinstance(spectra, Spectrum) else list(spectra)
    if not parts:
        raise ValueError("no spectra to adapt to: give measured spectra (or a set simulated with more shells)")
    shells = []
    for s in parts:
        if is_richer_model(bundle.material, s.material):
            check_matches(bundle.material, bundle.experiment, replace(s, material=None), "the model bundle",
                          "the input spectra")
            shells.append(s.material.n_shells)
        else:  # measured spectra of the bundle's crystal pass whatever shells their file records
            bundle.check_data(s, "the input spectra")
    if any(is_measurement(s) and s.material is not None and not s.material.same_as(bundle.material)
           for s in parts):  # one set: the crystal is checked, the model (shells) is the bundle's
        parts = [replace(s, material=None) if is_measurement(s) else s for s in parts]
    if shells:  # unlabelled, and one material (none) for the whole set
        parts = [replace(s, material=None, force_constants=None, linewidth=None) for s in parts]
    return (parts[0] if len(parts) == 1 else Spectrum.stack(parts)), (max(shells) if shells else None)


def finetune_bundle(bundle: Bundle | EnsembleBundle, measured: Spectrum | list[Spectrum], steps: int = 100,
                    lr: float = 3e-4, batch: int = 32,
                    seed: int = 0, workdir: str | Path | None = None, resume: bool = False, progress: bool = True,
                    settings: Any = None, sources: list[str] | None = None, trainable: str = "last",
                    background: bool = True,
                    on_epoch: Callable[[dict[str, Any]], None] | None = None) -> Bundle | EnsembleBundle:
    """A copy of ``bundle`` whose regressor is fine-tuned on ``measured`` (spectra or sets on the bundle grid,
    with temperatures: measured, or simulated with more shells — :func:`adaptation_inputs`) for ``steps`` Adam
    steps at ``lr``; ``trainable``: "last" (the output layer only, default), "all" layers or "bias"
    (the output layer's bias: one offset for every spectrum, keeping the trend in T); ``settings`` are the
    simulator settings (default: the ones of the bundle's training data); ``background``: compare with a profiled
    residual background slope, as the fits do. ``workdir`` holds a checkpoint for ``resume``; ``on_epoch`` is
    called with each step's record. An ensemble (:mod:`.ensemble`) comes back with every member adapted alike."""
    if isinstance(bundle, EnsembleBundle):  # every member adapted alike, each with its own checkpoint
        opts = {"steps": steps, "lr": lr, "batch": batch, "seed": seed, "resume": resume, "progress": progress,
                "settings": settings, "sources": sources, "trainable": trainable, "background": background,
                "on_epoch": on_epoch}
        members = [finetune_bundle(m, measured, workdir=None if workdir is None else Path(workdir) / f"member_{i}",
                                   **opts) for i, m in enumerate(bundle.members)]
        adapted = EnsembleBundle(members, copy.deepcopy(bundle.metadata))
        recs = [m.metadata["adaptation"][-1] for m in members]
        adapted.metadata.setdefault("adaptation", []).append(
            {**recs[0], "members": len(recs), "seconds": sum(r["seconds"] for r in recs),
             **{k: float(np.mean([r[k] for r in recs])) for k in ("loss_first", "loss_last")}})
        return adapted
    if int(steps) < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if not lr > 0:
        raise ValueError(f"the learning rate must be positive, got {lr}")
    measured, richer = adaptation_inputs(bundle, measured)
    if not measured.grid.same_as(bundle.grid):
        raise ValueError("the measured spectra are not on the bundle's grid: preprocess them onto it first "
                         "(`phonon-ml preprocess`)")
    temps = measured.temperatures()
    if not np.all(np.isfinite(temps) & (temps > 0)):
        raise ValueError("every measured spectrum needs its temperature (K): set it when preprocessing or pass "
                         "--temperature")
    if measured.quantity != bundle.metadata.get("quantity", "chi''"):
        raise ValueError(f"the spectra are {measured.quantity!r}, the bundle was trained on "
                         f"{bundle.metadata.get('quantity')!r}: preprocess them to that quantity")
    x, keep = spectra_tensor(measured, bundle.grid, "measured spectra")
    # the simulator settings of the bundle's training data, unless ``settings`` are given
    data_meta = ((bundle.metadata.get("data") or {}).get("simulated") or {}).get("metadata")
    if settings is not None:
        data_meta = {"simulator": {"settings": settings.to_dict()}}
    sim = consistency_simulator(bundle.grid, measured.quantity, data_meta, bundle.material, bundle.experiment)
    ae = copy.deepcopy(bundle.autoencoder).eval()
    with torch.no_grad():
        mu = ae.encode(x)[0]
    reg = copy.deepcopy(bundle.regressor)
    cfg = consistency_stage(reg, steps, batch, lr, trainable)
    ck = None
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        ck = Path(workdir) / "physics-finetune.pt"
    t0 = time.perf_counter()
    res = fit(reg, consistency_loss(sim, bundle.target_mean, bundle.target_std, bundle.targets, bool(background)),
              temperature_window_source(mu, x, temps[keep], int(batch), seed), None, cfg, lr,
              stage="physics-finetune", seed=seed, checkpoint=ck, resume=resume,
              signature={"bundle": bundle.metadata.get("weights_sha256"), "n": int(x.shape[0]), "layers": trainable,
                         "background": bool(background), "temperatures": [float(t) for t in temps[keep]],
                         "data_checksum": float(torch.nan_to_num(x).double().sum())}, progress=progress,
              on_epoch=on_epoch)
    reg.eval()
    for p in reg.parameters():
        p.requires_grad_(False)
    meta = copy.deepcopy(bundle.metadata)
    meta.setdefault("adaptation", []).append({
        "method": "simulator-consistency fine-tuning of the regressor (autoencoder frozen)",
        "steps": int(steps), "lr": float(lr), "layers": trainable, "background_slope_profiled": bool(background),
        "seed": int(seed), "n_spectra": int(x.shape[0]),
        "model_error_shells": richer,
        "temperatures_K": temps[keep].tolist(), "sources": list(sources or []),
        "loss_first": res.history[0]["train_loss"], "loss_last": res.history[-1]["train_loss"],
        "seconds": time.perf_counter() - t0})
    meta.pop("weights_sha256", None)
    return Bundle(autoencoder=ae, regressor=reg, grid=bundle.grid, target_mean=bundle.target_mean.copy(),
                  target_std=bundle.target_std.copy(), metadata=meta)


def adapt_to_file(bundle: Bundle | EnsembleBundle, measured: Spectrum | list[Spectrum], output: str | Path,
                  overwrite: bool = False, weights_dtype: str = "float32", resume: bool = False,
                  **kwargs: Any) -> Bundle | EnsembleBundle:
    """:func:`finetune_bundle` with its checkpoint beside ``output`` (``OUTPUT.checkpoints``, removed after
    success; kept for ``resume`` after an interruption), then the adapted bundle written to ``output``
    (atomically, :meth:`Bundle.save`); an ensemble has every member adapted alike. ``kwargs`` go to
    :func:`finetune_bundle`. What ``phonon-ml finetune`` and the Mantid algorithm AdaptPhononModel run."""
    import shutil

    from phonon_ml_core.data.fileio import check_bundle_output

    out = check_bundle_output(output, overwrite)
    work = out.with_name(out.name + ".checkpoints")
    adapted = finetune_bundle(bundle, measured, workdir=work, resume=resume, **kwargs)
    adapted.save(out, overwrite=overwrite, weights_dtype=weights_dtype)
    shutil.rmtree(work, ignore_errors=True)
    return adapted
