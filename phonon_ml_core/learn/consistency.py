"""Simulator-consistency training of the regressor (docs/training.md, "Physics stages").

The label stage teaches the regressor the constants of simulated spectra; it never sees how well the
spectrum *simulated from its prediction* matches the input, which is what the NMSE on measured data
measures. The physics stages minimise exactly that, through the differentiable simulator:

    loss = mean over spectra of NMSE(x, normalise(simulate(regressor(encoder(x), T), T, γ) + b1·(E − Ē)))

with the autoencoder frozen, the regressor's predicted γ (when it predicts one) as the linewidth, T passed
to the regressor only when it is temperature-conditioned, and b1 the best residual background slope of
each spectrum (profiled as in the fits, :mod:`.residual_background`; ``background=False`` drops it).
``physics`` runs on the simulated training spectra (no labels needed; it sharpens the constants the
spectrum is sensitive to); ``physics-finetune`` runs on the measured spectra, so fine-tuning adapts the
regressor to real data, not only the autoencoder. Both reuse :func:`phonon_ml_core.learn.loop.fit`
(checkpoints, resume, progress); one "epoch" is one optimiser step on a batch of spectra of neighbouring
temperatures (the simulator caches its |Q|-shell tensors per lattice parameter a(T)).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.fitting.residual_background import centred_energy, default_slope_bounds, profile
from phonon_ml_core.learn.configs import StageConfig
from phonon_ml_core.learn.targets import Targets
from phonon_ml_core.simulator import PowderSimulator, SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material

LINEWIDTH_MAX = 0.2  # upper clamp of a predicted γ in the physics loss (the data sets use 0–0.06)


def outputs_to_physical(out: torch.Tensor, target_mean: np.ndarray, target_std: np.ndarray, targets: Targets
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Standardised regressor outputs (B, n_outputs) → constants (B, n_constants) in N/m and γ (B,) clamped to
    [0, :data:`LINEWIDTH_MAX`], or None when ``targets`` has no linewidth."""
    p = out * torch.as_tensor(target_std, dtype=out.dtype) + torch.as_tensor(target_mean, dtype=out.dtype)
    fc, gamma = targets.split(p)
    return fc, (None if gamma is None else gamma.clamp(0.0, LINEWIDTH_MAX))


def consistency_nmse(sim: PowderSimulator, x: torch.Tensor, temperature: torch.Tensor, fc: torch.Tensor,
                     gamma: torch.Tensor | None, background: bool = False) -> torch.Tensor:
    """Per-spectrum NMSE (B,) between mean-normalised spectra ``x`` and the simulation at ``fc`` (N/m),
    ``temperature`` (K) and ``gamma``; NaN for dynamically unstable constants. With ``background`` the
    simulation gets the best residual background slope of each spectrum (:mod:`.residual_background`, as
    the fits' ``fit_background``); the slope is profiled without gradient (envelope theorem)."""
    y = sim(fc.to(sim.dtype), temperature.to(sim.dtype), linewidth=None if gamma is None else gamma.to(sim.dtype),
            allow_unstable=True).to(x.dtype)
    m = torch.as_tensor(np.array(sim.grid.mask, dtype=bool))
    xv, yv = x[:, m], y[:, m]
    finite = torch.isfinite(xv)          # pixels a measured spectrum lacks count for neither side
    xv = torch.where(finite, xv, torch.zeros_like(xv))
    if background:
        e, _ = centred_energy(sim.grid, x.dtype)
        yv = profile(xv, yv, e, default_slope_bounds(e))[0]
    yv = torch.where(finite, yv, torch.zeros_like(yv))
    return ((xv - yv) ** 2).sum(-1) / (xv ** 2).sum(-1).clamp_min(1e-12)


def consistency_loss(sim: PowderSimulator, target_mean: np.ndarray, target_std: np.ndarray, targets: Targets,
                     background: bool = False) -> Callable:
    """Loss for :func:`phonon_ml_core.learn.loop.fit` on batches (mu, x, T): mean NMSE over stable predictions
    (with a profiled residual background slope when ``background``)."""
    def fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator | None):
        mu, x, temps = batch
        fc, gamma = outputs_to_physical(model(mu, temps), target_mean, target_std, targets)  # T used when conditioned
        with torch.no_grad():  # find the unstable predictions first: their NaN would poison the gradient
            ok = torch.isfinite(consistency_nmse(sim, x, temps, fc, gamma))
        if not ok.any():  # every prediction unstable: no gradient, report the penalty
            return {"loss": 0.0 * fc.sum() + 1.0, "unstable": mu.new_tensor(1.0)}
        per = consistency_nmse(sim, x[ok], temps[ok], fc[ok], None if gamma is None else gamma[ok], background)
        return {"loss": per.mean(), "unstable": 1.0 - ok.float().mean()}
    return fn


def temperature_window_source(mu: torch.Tensor, x: torch.Tensor, temperature: np.ndarray, batch: int, seed: int
                              ) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """``draw(step)``: ``batch`` spectra of neighbouring temperatures (a random window of the T-sorted set,
    seeded by step); all spectra when there are no more than ``batch``."""
    order = np.argsort(np.asarray(temperature, float), kind="stable")
    t = torch.as_tensor(np.asarray(temperature, float), dtype=torch.float32)
    n = len(order)

    def draw(step: int) -> tuple[torch.Tensor, ...]:
        if n <= batch:
            idx = order
        else:
            start = int(np.random.default_rng([int(seed), int(step)]).integers(0, n - batch + 1))
            idx = order[start:start + batch]
        idx_t = torch.as_tensor(idx)
        return mu[idx_t], x[idx_t], t[idx_t]
    return draw


def consistency_simulator(grid: Grid, quantity: str, data_metadata: dict[str, Any] | None,
                          material: Material = ALUMINIUM, experiment: Experiment | None = None) -> PowderSimulator:
    """The float32 simulator of the physics stages for ``material`` on ``grid``, with the settings a data set
    recorded in its metadata (``metadata["simulator"]["settings"]``), else the resolution of ``experiment``
    (the shared, cached factory :func:`phonon_ml_core.simulator.factory.get_simulator`; aluminium through its
    legacy default, so that sets and bundles made before materials were recorded keep their physics)."""
    from phonon_ml_core.simulator.factory import get_simulator

    st = ((data_metadata or {}).get("simulator") or {}).get("settings") or {}
    return get_simulator(None if material.same_as(ALUMINIUM) else material, None if st else experiment, grid=grid,
                         quantity=quantity, settings=SimulationSettings(**st) if st else None, dtype=torch.float32)


def consistency_stage(regressor: torch.nn.Module, steps: int, batch: int, lr: float, layers: str = "all"):
    """Make the ``layers`` of ``regressor`` trainable ("all", or "last": the output layer only) and return the
    :class:`~phonon_ml_core.learn.configs.StageConfig` of a physics stage: ``steps`` Adam steps (one per "epoch"),
    constant ``lr``, no validation or early stopping, ten checkpoints."""
    if layers not in ("all", "last"):
        raise ValueError(f"layers must be 'all' or 'last' (the output layer only), got {layers!r}")
    regressor.train()
    for p in regressor.parameters():
        p.requires_grad_(layers == "all")
    for p in regressor.net[-1].parameters():
        p.requires_grad_(True)
    return StageConfig(epochs=int(steps), batch_size=int(batch), lr=lr, patience=None, val_fraction=0.0,
                       schedule="constant", checkpoint_every=max(1, int(steps) // 10))
