"""A residual background linear in energy transfer, profiled out of a spectrum comparison.

Measured spectra keep a smooth residual background after the preprocessing subtraction. A comparison of
a measured spectrum x with a simulated one y can allow for it the way the fits do (docs/fitting.md): the
model is normalise(y + b0 + b1·(E − Ē)) over the valid pixels, with b0 cancelling in the mean normalisation
and b1 the one value in the bounds that minimises the NMSE against x. The fits (``fit_background``), the
physics stages of training (``physics_background``) and the ML rows of ``phonon-ml evaluate`` share these
functions, so ML predictions and fits are compared with the same nuisance model.

Units: b1 is in spans of the mean-normalised simulated spectrum per meV; the default bound lets the
background change by up to ``SLOPE_LIMIT`` spans across the energy range of the valid pixels.
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: Default bound on |b1| times the energy range of the valid pixels (spans of the simulated spectrum).
SLOPE_LIMIT = 2.0


def centred_energy(grid, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, float]:
    """E − Ē over the valid pixels of ``grid`` (n_pix,) in meV, and Ē (meV)."""
    e = np.broadcast_to(np.asarray(grid.energy, float)[:, None], grid.shape)[np.asarray(grid.mask, bool)]
    mean = float(e.mean())
    return torch.as_tensor(e - mean, dtype=dtype), mean


def default_slope_bounds(e: torch.Tensor, limit: float = SLOPE_LIMIT) -> tuple[float, float]:
    """(−lim, lim) with lim = ``limit`` / (energy range of ``e``), per meV."""
    lim = float(limit) / max(float(e.max() - e.min()), 1e-12)
    return -lim, lim


def with_slope(y: torch.Tensor, b: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """normalise(y + b·e) over the valid pixels: y (..., n_pix), b (...), e (n_pix,) → (..., n_pix)."""
    z = y + b[..., None] * e
    span = (z.amax(-1, keepdim=True) - z.amin(-1, keepdim=True)).clamp_min(torch.finfo(z.dtype).tiny)
    return (z - z.mean(-1, keepdim=True)) / span


def best_slope(x: torch.Tensor, y: torch.Tensor, e: torch.Tensor, bounds: tuple[float, float],
               points: int = 41, rounds: int = 6) -> torch.Tensor:
    """The slope b1 (B,) within ``bounds`` that minimises Σ (x − normalise(y + b1·e))² for each row.

    ``x``: the normalised target pixels, (n_pix,) shared or (B, n_pix); ``y``: simulated pixels (B, n_pix).
    Variable projection by a nested grid search (``points`` values, then ±2 grid steps around the best,
    ``rounds`` times; final resolution ≈ 10⁻⁶ of the bound width): the objective is not smooth in b1 (the
    span max − min), so no Newton step. No gradient: by the envelope theorem ∂NMSE/∂y at fixed b1* is the
    gradient of the profiled NMSE. Non-finite y are treated as 0.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not hi > lo:
        raise ValueError(f"background slope bounds must be (low, high) with low < high, got {bounds}")
    with torch.no_grad():
        y = y.detach()
        y = torch.where(torch.isfinite(y), y, torch.zeros_like(y))
        x = x.detach().to(y.dtype)
        e = e.to(y.dtype)
        n = y.shape[0]
        # the numerator from moments: with c = y − ȳ + b·e (e has zero mean) and s = span(y + b·e),
        # Σ (x − c/s)² = Σx² − 2 (Σxc)/s + (Σc²)/s²; only the span needs the pixels for each trial b
        yc = y - y.mean(-1, keepdim=True)
        sxy, syy, sye = (x * yc).sum(-1, keepdim=True), (yc * yc).sum(-1, keepdim=True), \
            (yc * e).sum(-1, keepdim=True)
        sxe = (x * e).sum(-1, keepdim=True) if x.dim() > 1 else (x * e).sum()
        see = (e * e).sum()
        # the span needs only the highest and lowest pixel of each energy (pixels of one energy move together
        # with b): max_i (y_i + b·e) = max_i y_i + b·e exactly, rounding being monotonic
        levels, group = torch.unique(e, return_inverse=True)
        group = group.expand(n, -1)
        top = y.new_full((n, levels.numel()), -math.inf).scatter_reduce(1, group, y, "amax")
        bottom = y.new_full((n, levels.numel()), math.inf).scatter_reduce(1, group, y, "amin")
        centre = torch.full((n,), 0.5 * (lo + hi), dtype=y.dtype)
        half = 0.5 * (hi - lo)
        grid = torch.linspace(-1.0, 1.0, points, dtype=y.dtype)
        rows = torch.arange(n)
        for _ in range(rounds):
            bs = (centre[:, None] + half * grid).clamp(lo, hi)  # (B, K)
            slope = bs[..., None] * levels
            span = ((top[:, None, :] + slope).amax(-1) - (bottom[:, None, :] + slope).amin(-1)) \
                .clamp_min(torch.finfo(y.dtype).tiny)
            f = -2 * (sxy + bs * sxe) / span + (syy + 2 * bs * sye + bs * bs * see) / span ** 2
            f = torch.where(torch.isfinite(f), f, torch.full_like(f, math.inf))
            centre = bs[rows, f.argmin(1)]
            half = half * 4.0 / (points - 1)
    return centre


def profile(x: torch.Tensor, y: torch.Tensor, e: torch.Tensor, bounds: tuple[float, float]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """normalise(y + b1·e) with the best b1 for each row, and b1 (B,): ``x`` (B, n_pix) finite targets, ``y``
    (B, n_pix) simulated pixels. Rows with a non-finite ``y`` (unstable constants) come back NaN, b1 too. The
    gradient flows through ``y`` at fixed b1 (the profiled NMSE's gradient, envelope theorem)."""
    stable = torch.isfinite(y).all(-1)
    y0 = torch.where(stable[:, None], y, torch.zeros_like(y))
    b = best_slope(x, y0, e, bounds)
    model = torch.where(stable[:, None], with_slope(y0, b, e), torch.full_like(y0, math.nan))
    return model, torch.where(stable, b, torch.full_like(b, math.nan))


def profiled_nmse(x: np.ndarray, y: np.ndarray, grid, bounds: tuple[float, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NMSE (conventions §3) of mean-normalised spectra ``x`` against ``y`` (both (..., n_E, n_Q) on ``grid``)
    with the best residual background slope added to ``y``.

    Returns (NMSE (...), b1 (...) per meV, the model spectra normalise(y + b1·(E − Ē)) (..., n_E, n_Q), NaN
    off the mask). Spectra with non-finite valid pixels in ``y`` (unstable constants) get NaN.
    """
    m = np.asarray(grid.mask, bool)
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    lead = np.broadcast_shapes(xs.shape[:-2], ys.shape[:-2])
    xv = torch.as_tensor(np.broadcast_to(xs, lead + xs.shape[-2:])[..., m].reshape(-1, int(m.sum())))
    yv = torch.as_tensor(np.broadcast_to(ys, lead + ys.shape[-2:])[..., m].reshape(-1, int(m.sum())))
    e, _ = centred_energy(grid)
    model, b = profile(xv, yv, e, default_slope_bounds(e) if bounds is None else bounds)
    val = ((xv - model) ** 2).sum(-1) / (xv ** 2).sum(-1)   # NaN where y or x is not finite
    b = torch.where(torch.isfinite(val), b, torch.full_like(b, math.nan))
    full = np.full((model.shape[0], *grid.shape), np.nan)
    full[:, m] = model.numpy()
    return val.numpy().reshape(lead), b.numpy().reshape(lead), full.reshape(lead + tuple(grid.shape))
