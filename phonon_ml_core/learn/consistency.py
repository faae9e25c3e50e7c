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

With a temperature-invariance weight w > 0 (``PipelineConfig.temperature_invariance``, issue 16 item 5) the
``physics`` stage also simulates each spectrum's *true* constants and γ at a second temperature T₂ (one per step,
from a ladder spanning the training temperatures) and adds w · mean ‖f(x(fc, T₁)) − f(x(fc, T₂))‖² over the
standardised outputs: the prediction's response to the temperature nuisance alone (Debye–Waller factor,
multiphonon scattering, a(T)) is penalised, so that a trend in T comes from the spectra's constants.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np
import torch

from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.fitting.residual_background import centred_energy, default_slope_bounds, profile
from phonon_ml_core.learn.configs import StageConfig
from phonon_ml_core.learn.defaults import TRAINABLE_LAYERS
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
                     background: bool = False, invariance: TemperatureInvariance | None = None) -> Callable:
    """Loss for :func:`phonon_ml_core.learn.loop.fit` on batches (mu, x, T) — or (mu, x, T, labels) with
    ``invariance`` — : mean NMSE over stable predictions (with a profiled residual background slope when
    ``background``), plus the temperature-invariance penalty when ``invariance`` is given with a weight > 0."""
    def fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator | None):
        mu, x, temps, *labels = batch
        out = model(mu, temps)  # T used when the regressor is conditioned on it
        fc, gamma = outputs_to_physical(out, target_mean, target_std, targets)
        extra = {}
        pen = out.new_zeros(())
        if invariance is not None and invariance.weight > 0:
            if not labels:
                raise ValueError("the temperature-invariance penalty needs the labels of the batch (mu, x, T, labels)")
            pen = invariance.penalty(model, out, labels[0], gen)
            extra = {"invariance": pen.detach()}
        with torch.no_grad():  # find the unstable predictions first: their NaN would poison the gradient
            ok = torch.isfinite(consistency_nmse(sim, x, temps, fc, gamma))
        if not ok.any():  # every prediction unstable: no gradient, report the penalty
            return {"loss": 0.0 * fc.sum() + 1.0, "unstable": mu.new_tensor(1.0), **extra}
        per = consistency_nmse(sim, x[ok], temps[ok], fc[ok], None if gamma is None else gamma[ok], background)
        if extra:  # the stage's history then shows both terms
            extra["nmse"] = per.mean().detach()
            return {"loss": per.mean() + invariance.weight * pen, "unstable": 1.0 - ok.float().mean(), **extra}
        return {"loss": per.mean(), "unstable": 1.0 - ok.float().mean()}
    return fn


#: Temperatures of the invariance penalty's second simulation: this many, evenly spanning the training range
#: (few distinct a(T), so the simulator's |Q|-shell cache serves them after the first steps).
INVARIANCE_LADDER = 13


class TemperatureInvariance:
    """The temperature-invariance penalty of the ``physics`` stage (module docstring).

    Args:
        weight: w ≥ 0 (0 = off).
        sim: the stage's simulator (float32, the data set's settings).
        encoder: the frozen autoencoder (its ``encode`` gives the codes of the re-simulated spectra).
        targets: the regressor's named targets (the labels' columns: constants in N/m, then γ when learned).
        temperature_range: (T_min, T_max) K of the training spectra; T₂ is drawn from
            :data:`INVARIANCE_LADDER` temperatures spanning it.
    """

    def __init__(self, weight: float, sim: PowderSimulator, encoder: torch.nn.Module, targets: Targets,
                 temperature_range: tuple[float, float]):
        if not weight >= 0:
            raise ValueError(f"the temperature-invariance weight must be ≥ 0, got {weight}")
        lo, hi = float(temperature_range[0]), float(temperature_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"temperature range must be positive and ordered (K), got {temperature_range}")
        self.weight, self.sim, self.encoder, self.targets = float(weight), sim, encoder, targets
        self.ladder = np.linspace(lo, hi, INVARIANCE_LADDER if hi > lo else 1)

    def second_temperature(self, gen: torch.Generator | None) -> float:
        """T₂ (K): a ladder temperature drawn with ``gen`` (the middle one without a generator, for validation)."""
        if gen is None:
            return float(self.ladder[len(self.ladder) // 2])
        return float(self.ladder[int(torch.randint(len(self.ladder), (1,), generator=gen))])

    @torch.no_grad()
    def codes_at(self, labels: torch.Tensor, temperature: float) -> torch.Tensor:
        """Latent means (B, latent) of the spectra of ``labels`` (B, n_outputs; N/m and γ) simulated at
        ``temperature`` (K)."""
        fc, gamma = self.targets.split(labels)
        t = torch.full((labels.shape[0],), temperature, dtype=self.sim.dtype)
        y = self.sim(fc.to(self.sim.dtype), t, linewidth=None if gamma is None else gamma.to(self.sim.dtype),
                     allow_unstable=True).float()
        y = torch.where(torch.as_tensor(np.array(self.sim.grid.mask, dtype=bool)), y, torch.full_like(y, np.nan))
        return self.encoder.encode(y)[0]

    def penalty(self, model: torch.nn.Module, out: torch.Tensor, labels: torch.Tensor,
                gen: torch.Generator | None) -> torch.Tensor:
        """Mean squared difference of the standardised predictions ``out`` (B, n_outputs) at the batch's
        temperatures and the predictions for the same labels simulated at a second temperature."""
        t2 = self.second_temperature(gen)
        out2 = model(self.codes_at(labels, t2), torch.full((labels.shape[0],), t2, dtype=out.dtype))
        return ((out - out2) ** 2).mean()


def second_temperature_spectra(sim: PowderSimulator, force_constants: np.ndarray, linewidth: np.ndarray | None,
                               temperature_range: tuple[float, float], seed: int, batch: int = 64) -> torch.Tensor:
    """The spectra of ``force_constants`` (N, n_constants; N/m) and ``linewidth`` (N,; γ, or None) simulated again,
    each at a second temperature (K) drawn with ``seed`` from :data:`INVARIANCE_LADDER` temperatures spanning
    ``temperature_range``: (N, n_E, n_Q) float32, mean-normalised on the grid's mask, NaN outside it (and for
    unstable constants). The pairs of the feature extractor's latent temperature-invariance penalty
    (:func:`phonon_ml_core.learn.losses.latent_invariance_loss`); one simulator call per ladder temperature and
    ``batch`` spectra (the |Q|-shell cache serves each a(T) once)."""
    lo, hi = float(temperature_range[0]), float(temperature_range[1])
    if not 0 < lo <= hi:
        raise ValueError(f"temperature range must be positive and ordered (K), got {temperature_range}")
    fc = np.asarray(force_constants, float)
    ladder = np.linspace(lo, hi, INVARIANCE_LADDER if hi > lo else 1)
    rung = np.random.default_rng(int(seed)).integers(0, len(ladder), fc.shape[0])
    mask = np.array(sim.grid.mask, dtype=bool)
    out = torch.full((fc.shape[0], *mask.shape), float("nan"), dtype=torch.float32)
    with torch.no_grad():
        for r in np.unique(rung):
            idx = np.where(rung == r)[0]
            for i in range(0, idx.size, batch):
                part = idx[i:i + batch]
                t = torch.full((part.size,), float(ladder[r]), dtype=sim.dtype)
                lw = None if linewidth is None else torch.as_tensor(np.asarray(linewidth, float)[part], dtype=sim.dtype)
                y = sim(torch.as_tensor(fc[part], dtype=sim.dtype), t, linewidth=lw, allow_unstable=True)
                y = mean_normalize(y, mask)
                out[torch.as_tensor(part)] = y.float()
    return out


def temperature_window_source(mu: torch.Tensor, x: torch.Tensor, temperature: np.ndarray, batch: int, seed: int,
                              labels: np.ndarray | None = None) -> Callable[[int], tuple[torch.Tensor, ...]]:
    """``draw(step)``: ``batch`` spectra of neighbouring temperatures (a random window of the T-sorted set,
    seeded by step) as (mu, x, T[, labels]); all spectra when there are no more than ``batch``. ``labels``
    (N, n_outputs; N/m and γ) are added for the temperature-invariance penalty."""
    lab = None if labels is None else torch.as_tensor(np.asarray(labels, float), dtype=torch.float32)
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
        return (mu[idx_t], x[idx_t], t[idx_t]) + (() if lab is None else (lab[idx_t],))
    return draw


def consistency_simulator(grid: Grid, quantity: str, data_metadata: dict[str, Any] | None,
                          material: Material = ALUMINIUM, experiment: Experiment | None = None) -> PowderSimulator:
    """The float32 simulator of the physics stages for ``material`` on ``grid``, with the settings a data set
    recorded in its metadata (``metadata["simulator"]["settings"]``), else the resolution of ``experiment``
    (the shared, cached factory :func:`phonon_ml_core.simulator.factory.get_simulator`)."""
    from phonon_ml_core.simulator.factory import get_simulator

    st = ((data_metadata or {}).get("simulator") or {}).get("settings") or {}
    return get_simulator(material, None if st else experiment, grid=grid,
                         quantity=quantity, settings=SimulationSettings(**st) if st else None, dtype=torch.float32)


def consistency_stage(regressor: torch.nn.Module, steps: int, batch: int, lr: float, layers: str = "all"):
    """Make the ``layers`` of ``regressor`` trainable ("all"; "last": the output layer only; "bias": the output
    layer's bias only, a constant offset of every standardised output, which keeps any trend in T) and return the
    :class:`~phonon_ml_core.learn.configs.StageConfig` of a physics stage: ``steps`` Adam steps (one per "epoch"),
    constant ``lr``, no validation or early stopping, ten checkpoints."""
    if layers not in TRAINABLE_LAYERS:
        raise ValueError(f"layers must be one of {', '.join(TRAINABLE_LAYERS)} ('last': the output layer only, "
                         f"'bias': its bias only), got {layers!r}")
    regressor.train()
    for p in regressor.parameters():
        p.requires_grad_(layers == "all")
    last = regressor.net[-1]
    for p in ([last.bias] if layers == "bias" else last.parameters()):
        p.requires_grad_(True)
    return StageConfig(epochs=int(steps), batch_size=int(batch), lr=lr, patience=None, val_fraction=0.0,
                       schedule="constant", checkpoint_every=max(1, int(steps) // 10))
