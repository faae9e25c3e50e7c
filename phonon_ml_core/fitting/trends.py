"""Weighted straight-line trends of fitted values against temperature (series of fits, the evaluation report)."""
from __future__ import annotations

import numpy as np


def linear_trend(t: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """Weighted straight line y = intercept + slope·t (weights 1/s² where finite and positive, else uniform).

    The covariance is scaled by the Birge ratio when the scatter exceeds the errors. Returns {"slope" (y per t),
    "intercept", "slope_std"}; NaN slope with fewer than two finite points or a single temperature.
    """
    ok = np.isfinite(y)
    if ok.sum() < 2 or np.ptp(t[ok]) == 0:
        return {"slope": float("nan"), "intercept": float(np.nanmean(y)) if ok.any() else float("nan"),
                "slope_std": float("nan")}
    w = np.where(np.isfinite(s[ok]) & (s[ok] > 0), 1.0 / np.maximum(s[ok], 1e-12) ** 2, np.nan)
    if not np.all(np.isfinite(w)):
        w = np.ones(ok.sum())
    a = np.stack([np.ones(ok.sum()), t[ok]], 1)
    aw = a * w[:, None]
    cov = np.linalg.pinv(a.T @ aw)
    coef = cov @ (aw.T @ y[ok])
    dof = ok.sum() - 2
    if dof > 0:  # scale by the scatter (Birge ratio) so that the slope std is realistic
        chi2 = float((w * (y[ok] - a @ coef) ** 2).sum()) / dof
        cov = cov * max(chi2, 1.0)
    return {"slope": float(coef[1]), "intercept": float(coef[0]), "slope_std": float(np.sqrt(max(cov[1, 1], 0)))}
