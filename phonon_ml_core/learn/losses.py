"""Losses of the network stages and their data sources (autoencoder, denoising, regressor, on-the-fly spectra)."""
from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.loop import LossFn
from phonon_ml_core.learn.matching import spectrum_experiment, spectrum_material
from phonon_ml_core.learn.networks import SpectrumAutoencoder
from phonon_ml_core.specs import Experiment, Material


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
        slope = (torch.rand((b, 1, 1), generator=gen, device=x.device) * 2 - 1) * background
        noisy = x + noise * torch.randn(x.shape, generator=gen, device=x.device) + slope * ramp.to(x.device)
        noisy = mean_normalize(torch.where(m.to(x.device), noisy, torch.full_like(noisy, float("nan"))),
                               np.asarray(mask))
        return model.loss(noisy, generator=gen, target=x)
    return fn


def latent_invariance(model: SpectrumAutoencoder, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Mean over latent dimensions of ‖μ(x) − μ(x2)‖² relative to the latent spread (the variance of μ over the
    pair of batches, per dimension): 0 when the code ignores what differs between ``x`` and ``x2`` (B, n_E, n_Q),
    ≈ 2 when it is unrelated to it. Invariant to a rescaling of the code, so it cannot be met by shrinking it.
    Pairs whose second spectrum is NaN (unstable constants) are left out."""
    mu, mu2 = model.encode(x)[0], model.encode(x2)[0]
    ok = torch.isfinite(mu2).all(-1) & torch.isfinite(mu).all(-1)
    if int(ok.sum()) < 2:
        return mu.new_zeros(())
    mu, mu2 = mu[ok], mu2[ok]
    spread = torch.cat([mu, mu2]).var(0).clamp_min(1e-8)
    return (((mu - mu2) ** 2) / spread).mean()


def latent_invariance_loss(base: LossFn, weight: float) -> LossFn:
    """``base`` (an autoencoder loss on batch[0]) plus ``weight`` × :func:`latent_invariance` on batches (x, x2) of
    the same constants and γ at two temperatures (:func:`phonon_ml_core.learn.consistency.second_temperature_spectra`):
    the feature extractor's code is pulled towards ignoring the temperature nuisance (issue 16, item 5). Batches
    without a pair (validation) get ``base`` alone; the history shows the penalty as ``latent_invariance``."""
    if not weight >= 0:
        raise ValueError(f"the latent temperature-invariance weight must be ≥ 0, got {weight}")

    def fn(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], gen: torch.Generator | None):
        out = base(model, batch[:1], gen)
        if len(batch) < 2 or weight == 0:
            return out
        pen = latent_invariance(model, batch[0], batch[1])
        return {**out, "loss": out["loss"] + weight * pen, "latent_invariance": pen.detach()}
    return fn


def simulator_source(simulated: Spectrum, n: int, seed: int, material: Material | None = None,
                     experiment: Experiment | None = None, batch: int = 8) -> Callable[[int], tuple[torch.Tensor]]:
    """Fresh simulated spectra of ``material`` each epoch, drawn like the data set ``simulated`` (its sampling
    metadata; else the material's sampling ranges). ``material`` and ``experiment`` default to the data set's.

    Returns ``draw(epoch) -> (x,)`` with x (n, n_E, n_Q) mean-normalised float32; deterministic per epoch.
    """
    from phonon_ml_core.learn.consistency import consistency_simulator
    from phonon_ml_core.simulator.dataset import SamplingConfig, sample_parameters

    material = material or spectrum_material(simulated)
    experiment = experiment or spectrum_experiment(simulated)
    meta = dict(simulated.metadata.get("sampling") or {})
    for key in ("relative_range", "temperature_range", "linewidth_range"):
        if meta.get(key) is not None:
            meta[key] = tuple(meta[key])
    if meta.get("absolute_ranges") is not None:
        meta["absolute_ranges"] = {k: tuple(v) for k, v in meta["absolute_ranges"].items()}
    base = SamplingConfig(**meta)  # without recorded sampling: the material's own ranges (conventions §7)
    sim = consistency_simulator(simulated.grid, simulated.quantity, simulated.metadata, material, experiment)
    model = material.bvk_model()

    def draw(epoch: int) -> tuple[torch.Tensor]:
        p = sample_parameters(n, replace(base, seed=int(seed) * 100_003 + epoch), model=model, material=material)
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
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen, dtype=mu.dtype, device=mu.device)
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

