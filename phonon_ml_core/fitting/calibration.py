"""Model-error inflation of fit uncertainties: residuals correlated between pixels carry fewer independent pixels.

The Gauss–Newton std (:mod:`phonon_ml_core.fitting.uncertainty`) scales the curvature by the residual variance
σ² = SSR / (n − p), which already grows with the lack of fit, but it counts every valid pixel as an independent
observation. Model error (a missing shell, a wrong linewidth, an imperfect background) and the instrument
resolution make neighbouring residuals alike, so the data hold fewer independent pixels n_eff < n and the honest
variance is larger by n / n_eff. We estimate n_eff from the lag-one correlations of the residual map along energy
(ρ_E) and |Q| (ρ_Q), as for a separable first-order autoregressive field:
n_eff = n · (1 − ρ_E)/(1 + ρ_E) · (1 − ρ_Q)/(1 + ρ_Q) (ρ clipped to [0, 0.98]). White noise gives ρ ≈ 0 and an
``inflation`` = sqrt((n − p)/(n_eff − p)) ≈ 1; a smooth lack of fit gives ρ → 1 and a large inflation.

That alone does not cover the errors that do not shrink with more pixels: on simulated spectra with known truth
(benchmarks/coverage.py) the fitted constants miss the truth by several inflated σ even with the right model,
because the span normalisation of a noisy spectrum (conventions §3) and the first/second-shell trade-off bias the
constants by an amount that is the same on a 548-pixel and a 4144-pixel grid. The calibration therefore caps the
information of one spectrum at :data:`INDEPENDENT_PIXEL_CAP` independent pixels (measured: 45 gives 62–68 %
coverage of nominal 68 % intervals on both grids): the std multiplier is
``std_factor`` = sqrt((n − p)/(min(n_eff, cap · n_spectra) − p)).
"""
from __future__ import annotations

import numpy as np

#: Most independent pixels one spectrum is worth against model and normalisation error (benchmarks/coverage.py).
INDEPENDENT_PIXEL_CAP = 45.0
#: Largest lag-one correlation used (keeps n_eff ≥ n · 1e-4 for a perfectly smooth residual).
RHO_MAX = 0.98


def lag_one_correlation(residual: np.ndarray, mask: np.ndarray, axis: int) -> float:
    """Correlation of neighbouring residuals (pairs both valid) along ``axis`` of the (n_E, n_Q) map; 0 if none."""
    r = np.where(np.asarray(mask, bool), np.asarray(residual, float), np.nan)
    r = r - np.nanmean(r)
    a = np.moveaxis(r, axis, 0)
    x, y = a[:-1].ravel(), a[1:].ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return 0.0
    x, y = x[ok], y[ok]
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 0.0


def effective_pixels(residual: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """n, n_eff and the lag-one correlations (ρ_E along energy, ρ_Q along |Q|) of a residual map (n_E, n_Q)."""
    m = np.asarray(mask, bool) & np.isfinite(residual)
    n = float(m.sum())
    rho_e = float(np.clip(lag_one_correlation(residual, m, 0), 0.0, RHO_MAX))
    rho_q = float(np.clip(lag_one_correlation(residual, m, 1), 0.0, RHO_MAX))
    n_eff = n * (1 - rho_e) / (1 + rho_e) * (1 - rho_q) / (1 + rho_q)
    return {"n_pixels": n, "n_effective": max(n_eff, 1.0), "rho_energy": rho_e, "rho_q": rho_q}


def model_error_inflation(residuals, masks, n_params: int = 0, cap: float | None = None) -> dict[str, float]:
    """The std multipliers for one or several residual maps (a joint fit).

    ``residuals``/``masks``: one (n_E, n_Q) map or lists of them (model − data, any scale); ``n_params`` p: the
    fitted parameters; ``cap``: independent pixels per spectrum at most (default :data:`INDEPENDENT_PIXEL_CAP`).
    Returns {"inflation": sqrt((n − p)/(n_eff − p)) from the pixel correlation alone (≈ 1 for white residuals),
    "std_factor": the calibrated multiplier sqrt((n − p)/(min(n_eff, cap·N) − p)) ≥ inflation, "n_pixels",
    "n_effective", "n_effective_calibrated", "cap", "rho_energy", "rho_q" (pixel-weighted means)}.
    """
    if isinstance(residuals, np.ndarray) and residuals.ndim == 2:
        residuals, masks = [residuals], [masks]
    parts = [effective_pixels(r, m) for r, m in zip(residuals, masks)]
    cap = INDEPENDENT_PIXEL_CAP if cap is None else float(cap)
    n = sum(q["n_pixels"] for q in parts)
    n_eff = sum(q["n_effective"] for q in parts)
    n_cal = min(n_eff, cap * len(parts))
    w = np.array([q["n_pixels"] for q in parts]) / max(n, 1.0)
    return {"inflation": float(np.sqrt(max(n - n_params, 1.0) / max(n_eff - n_params, 1.0))),
            "std_factor": float(np.sqrt(max(n - n_params, 1.0) / max(n_cal - n_params, 1.0))),
            "n_pixels": n, "n_effective": n_eff, "n_effective_calibrated": n_cal, "cap": cap,
            "rho_energy": float(sum(wi * q["rho_energy"] for wi, q in zip(w, parts))),
            "rho_q": float(sum(wi * q["rho_q"] for wi, q in zip(w, parts)))}


def coverage(estimate: np.ndarray, std: np.ndarray, truth: np.ndarray, z: float = 1.0) -> float:
    """Fraction of finite intervals estimate ± z·std that contain the truth (nominal 68 % for z = 1)."""
    e, s, t = (np.asarray(v, float).ravel() for v in (estimate, std, truth))
    ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(t)
    return float((np.abs(e[ok] - t[ok]) <= z * s[ok]).mean()) if ok.any() else float("nan")
