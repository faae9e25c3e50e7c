"""Model-error inflation of fit uncertainties: residuals correlated between pixels carry fewer independent pixels.

The Gauss–Newton std (:mod:`phonon_ml_core.fitting.uncertainty`) scales the curvature by the residual variance
σ² = SSR / (n − p), which already grows with the lack of fit, but it counts every valid pixel as an independent
observation. Model error (a missing shell, a wrong linewidth, an imperfect background) and the instrument
resolution make neighbouring residuals alike, so the data hold fewer independent pixels n_eff < n and the honest
variance is larger by n / n_eff. We estimate n_eff from the lag-one correlations of the residual map along energy
(ρ_E) and |Q| (ρ_Q), as for a separable first-order autoregressive field:
n_eff = n · (1 − ρ_E)/(1 + ρ_E) · (1 − ρ_Q)/(1 + ρ_Q) (ρ clipped to [0, 0.98]). White noise gives ρ ≈ 0 and an
inflation ≈ 1; a smooth lack of fit gives ρ → 1 and a large inflation. The std multiplier is
``inflation = sqrt(n / n_eff)``, times :data:`CALIBRATION`, the factor measured on simulated spectra with known
truth (benchmarks/coverage.py) that brings the coverage of nominal 68 % intervals to 68 %.
"""
from __future__ import annotations

import numpy as np

#: Extra factor on the inflated std, from the coverage benchmark (benchmarks/coverage.py; 1 = none).
CALIBRATION = 1.0
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


def model_error_inflation(residuals, masks, n_params: int = 0, calibration: float | None = None
                          ) -> dict[str, float]:
    """The std multiplier for one or several residual maps (a joint fit).

    ``residuals``/``masks``: one (n_E, n_Q) map or lists of them (model − data, any scale). ``inflation`` =
    sqrt((n − p) / (n_eff − p)) (p = ``n_params``): ≈ 1 for white residuals, large for a smooth lack of fit.
    ``std_factor`` = inflation × calibration is what the std are multiplied by. Returns {"inflation",
    "std_factor", "calibration", "n_pixels", "n_effective", "rho_energy", "rho_q" (pixel-weighted means)}.
    """
    if isinstance(residuals, np.ndarray) and residuals.ndim == 2:
        residuals, masks = [residuals], [masks]
    parts = [effective_pixels(r, m) for r, m in zip(residuals, masks)]
    n = sum(p["n_pixels"] for p in parts)
    n_eff = sum(p["n_effective"] for p in parts)
    cal = CALIBRATION if calibration is None else float(calibration)
    dof_ratio = max(n - n_params, 1.0) / max(n_eff - n_params, 1.0)
    w = np.array([p["n_pixels"] for p in parts]) / max(n, 1.0)
    infl = float(np.sqrt(dof_ratio))
    return {"inflation": infl, "std_factor": infl * cal, "n_pixels": n, "n_effective": n_eff,
            "rho_energy": float(sum(wi * p["rho_energy"] for wi, p in zip(w, parts))),
            "rho_q": float(sum(wi * p["rho_q"] for wi, p in zip(w, parts))), "calibration": cal}


def coverage(estimate: np.ndarray, std: np.ndarray, truth: np.ndarray, z: float = 1.0) -> float:
    """Fraction of finite intervals estimate ± z·std that contain the truth (nominal 68 % for z = 1)."""
    e, s, t = (np.asarray(v, float).ravel() for v in (estimate, std, truth))
    ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(t)
    return float((np.abs(e[ok] - t[ok]) <= z * s[ok]).mean()) if ok.any() else float("nan")
