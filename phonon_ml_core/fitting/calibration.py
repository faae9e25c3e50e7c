"""Fit uncertainties that account for model error: lack of fit read from the residual field, plus the error of the
span normalisation.

The Gauss–Newton covariance σ²(JᵀJ)⁻¹ (σ² = SSR/(n − p)) treats every valid pixel as an independent observation
with the same variance. On simulated spectra with known truth (benchmarks/coverage.py) its nominal 68 % intervals
hold the truth 7–33 % of the time, for two reasons this module models (docs/fitting.md, "Uncertainties that account
for model error"):

1. **Lack of fit is correlated** (a missing shell, a wrong linewidth shape): the residual map r (n_E, n_Q) is a
   white part (noise) plus a smooth part. :func:`residual_field` splits its variance with the second differences
   (they remove a smooth field: var(Δ²r)/6 is the white variance σ_w²) and measures the smooth part's integral
   correlation lengths τ_E, τ_Q (pixels; τ = 1 + 2 Σ_k ρ_s(k) over the initial positive lags, ρ_s the
   autocorrelation of the smooth part, nugget removed; a smooth variance below twice the sampling error of the
   variance of n white pixels, 2·var·sqrt(2/n), counts as zero). A parameter averages the field over its
   Jacobian's support, so each pixel counts with the variance v = σ_w² + σ_s² τ_E τ_Q (the variance of a mean of
   a correlated field, per pixel). τ is a length on the grid: a finer grid has proportionally longer τ in pixels,
   so the number of independent cells n / (τ_E τ_Q) of a given smooth field does not depend on the grid (tests
   check both).
2. **Span normalisation** (conventions §3) divides the data by max − min of the *noisy* spectrum, so the data are
   the model scaled by 1/(1 + ε), ε the noise's relative contribution to the span (≈ 2–4 % at 1 % noise). The fit
   absorbs that scale into the constants (δθ = −ε (JᵀJ)⁻¹Jᵀm, m the fitted model), an error that does not shrink
   with more pixels and is invisible in the residual. :func:`span_error` gives E[ε²] by drawing white noise of the
   measured σ_w onto the fitted model (a fixed seed: deterministic). The scale error this spectrum actually shows
   is measured too: ε̂ = rᵀu/uᵀu along u = (I − H)m, the visible part of a scale error (it matches the scale error
   fitted from the known truth to ±0.01), with variance v/uᵀu. The span term uses max(E[ε²], ε̂² + v/uᵀu) (what
   the noise implies, or what the data show when larger, e.g. a scale-like model error), and the residual's
   component along u is removed before part 1, so the scale error is counted once.

:func:`calibrated_covariance` combines both for one spectrum or a joint fit (spectra independent):
cov = C (Σ_i v_i J_iᵀJ_i + σ²·E) C + Σ_i E[ε_i²] g_i g_iᵀ, C = (JᵀJ + E)⁻¹, g_i = C J_iᵀ m_i, where the rows of J
beyond the pixels (priors) and the extra curvature E (a smoothness penalty) keep their Gauss–Newton weight σ².
No number in the rule is fitted to the coverage benchmark.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Largest lag-one correlation used by :func:`effective_pixels` (keeps n_eff ≥ n · 1e-4).
RHO_MAX = 0.98
#: Noise draws of :func:`span_error` (the relative error of its E[ε²] is ≈ sqrt(2/64) ≈ 18 % at worst, less for a
#: narrow ε distribution).
SPAN_DRAWS = 64
#: What a calibrated std means (recorded with the inflation details in RESULT.json).
STD_MEANING = ("one-sigma, calibrated for model error: Gauss-Newton covariance with each pixel weighted by the "
               "white plus correlated (lack-of-fit) variance of the residual field, plus the span-normalisation "
               "error; nominal 68 % intervals (fitting.calibration, docs/fitting.md)")


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
    """n, the AR(1) n_eff = n (1 − ρ_E)/(1 + ρ_E) (1 − ρ_Q)/(1 + ρ_Q) and the lag-one correlations of a residual
    map (n_E, n_Q) (a diagnostic: white noise and lack of fit mixed, so not used for the calibration)."""
    m = np.asarray(mask, bool) & np.isfinite(residual)
    n = float(m.sum())
    rho_e = float(np.clip(lag_one_correlation(residual, m, 0), 0.0, RHO_MAX))
    rho_q = float(np.clip(lag_one_correlation(residual, m, 1), 0.0, RHO_MAX))
    n_eff = n * (1 - rho_e) / (1 + rho_e) * (1 - rho_q) / (1 + rho_q)
    return {"n_pixels": n, "n_effective": max(n_eff, 1.0), "rho_energy": rho_e, "rho_q": rho_q}


def _lagged_mean_product(r: np.ndarray, axis: int, lag: int) -> tuple[float, int]:
    """Mean of r_i r_{i+lag} along ``axis`` over the valid pairs, and their number."""
    a = np.moveaxis(r, axis, 0)
    prod = (a[:-lag] * a[lag:]).ravel() if lag else (a * a).ravel()
    prod = prod[np.isfinite(prod)]
    return (float(prod.mean()) if prod.size > 2 else 0.0), int(prod.size)


def _white_variance(r: np.ndarray, axis: int) -> float:
    a = np.moveaxis(r, axis, 0)
    d = (a[2:] - 2 * a[1:-1] + a[:-2]).ravel()
    d = d[np.isfinite(d)]
    return float((d * d).mean() / 6.0) if d.size > 2 else np.inf


def _integral_length(r: np.ndarray, axis: int, smooth_var: float) -> float:
    """τ = 1 + 2 Σ_k ρ_s(k) (pixels) of the smooth part along ``axis``, over the initial positive lags."""
    tau = 1.0
    for lag in range(1, r.shape[axis] // 2):
        cov, pairs = _lagged_mean_product(r, axis, lag)
        if pairs < 3 or cov <= 0.0:
            break
        tau += 2.0 * min(cov / smooth_var, 1.0)
    return tau


def residual_field(residual: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """White + smooth decomposition of a residual map (n_E, n_Q) (any scale; NaN or ~mask = not valid).

    Returns {"n_pixels", "variance" (mean square about the mean), "white_variance" σ_w² (second differences,
    the smaller of the two axes), "smooth_variance" σ_s², "tau_energy", "tau_q" (integral correlation lengths of the
    smooth part, pixels), "n_effective" n/(τ_E τ_Q) (independent cells of the smooth part), "pixel_variance"
    v = σ_w² + σ_s² τ_E τ_Q, "white_fraction" σ_w²/variance}.
    """
    m = np.asarray(mask, bool) & np.isfinite(residual)
    n = int(m.sum())
    if n < 3:
        raise ValueError(f"a residual map needs at least 3 valid pixels, got {n}")
    r = np.where(m, np.asarray(residual, float), np.nan)
    r = r - np.nanmean(r)
    var = float(np.nanmean(r * r))
    white = min(_white_variance(r, 0), _white_variance(r, 1), var)
    smooth = var - white
    if smooth > 2.0 * var * np.sqrt(2.0 / n):  # above the sampling error of the variance of n white pixels
        tau_e, tau_q = _integral_length(r, 0, smooth), _integral_length(r, 1, smooth)
    else:
        smooth, tau_e, tau_q = 0.0, 1.0, 1.0
    return {"n_pixels": float(n), "variance": var, "white_variance": white, "smooth_variance": smooth,
            "tau_energy": tau_e, "tau_q": tau_q, "n_effective": n / (tau_e * tau_q),
            "pixel_variance": white + smooth * tau_e * tau_q,
            "white_fraction": white / var if var > 0 else 1.0}


def span_error(model: np.ndarray, white_variance: float, draws: int = SPAN_DRAWS, seed: int = 0
               ) -> tuple[float, float]:
    """(E[ε²], E[ε]) of the relative span error ε = span(m + w)/span(m) − 1 with w ~ N(0, σ_w²) white noise on the
    valid pixels ``model`` (1-d, same units as σ_w²); deterministic (fixed ``seed``)."""
    m = np.asarray(model, float).ravel()
    m = m[np.isfinite(m)]
    span = float(m.max() - m.min()) if m.size else 0.0
    if span <= 0 or not white_variance > 0:
        return 0.0, 0.0
    noise = np.random.default_rng(seed).standard_normal((draws, m.size)) * np.sqrt(white_variance)
    v = m[None] + noise
    eps = (v.max(1) - v.min(1)) / span - 1.0
    return float((eps ** 2).mean()), float(eps.mean())


def _inverse(curvature: np.ndarray) -> np.ndarray:
    try:
        inv = np.linalg.inv(curvature)
        if np.all(np.isfinite(inv)) and np.all(np.diag(inv) >= 0):
            return inv
    except np.linalg.LinAlgError:
        pass
    return np.linalg.pinv(curvature)


def calibrated_covariance(jac: np.ndarray, residual: np.ndarray, blocks: Sequence[slice],
                          masks: Sequence[np.ndarray], model: Sequence[np.ndarray],
                          extra_curvature: np.ndarray | None = None) -> dict:
    """The calibrated covariance of the parameters of a fit of one or several spectra (module docstring).

    ``jac`` (n_rows, P) and ``residual`` (n_rows,): Jacobian and residuals at the optimum (model − data, any
    per-spectrum scale); ``blocks``: the rows of each spectrum's valid pixels (rows outside every block, e.g.
    priors, keep the Gauss–Newton weight); ``masks``: each spectrum's (n_E, n_Q) valid-pixel mask (its rows are the
    mask's pixels in C order); ``model``: each spectrum's fitted model on those rows (same scale as the residual);
    ``extra_curvature`` (P, P): a penalty's curvature added to JᵀJ. Returns {"covariance", "covariance_statistical"
    (σ²(JᵀJ + E)⁻¹), "sigma2", "lack_of_fit" (covariance of part 1), "span" (part 2), "spectra" [per spectrum:
    residual_field + "span_rms", "span_mean", "span_seen" (ε̂)], "lack_of_fit_inflation" (sqrt of pooled v / σ²),
    "meaning"}.
    """
    jac, residual = np.asarray(jac, float), np.asarray(residual, float)
    n_rows, p = jac.shape
    extra = np.zeros((p, p)) if extra_curvature is None else np.asarray(extra_curvature, float)
    sigma2 = float(residual @ residual) / max(n_rows - p, 1)
    c = _inverse(jac.T @ jac + extra)
    outside = np.ones(n_rows, bool)
    middle = np.zeros((p, p))
    span_cov = np.zeros((p, p))
    spectra, v_pix, n_pix = [], 0.0, 0
    for rows, mask, m in zip(blocks, masks, model):
        outside[rows] = False
        mask = np.asarray(mask, bool)
        j, m = jac[rows], np.asarray(m, float)
        g = c @ (j.T @ m)
        visible = m - j @ g  # (I − H) m: the part of a scale error of the data that the fit cannot absorb
        uu = float(visible @ visible)
        eps_seen = float(residual[rows] @ visible) / uu if uu > 0 else 0.0
        rmap = np.full(mask.shape, np.nan)
        rmap[mask] = residual[rows] - eps_seen * visible  # the scale error is counted once: by the span term
        field = residual_field(rmap, mask)
        middle += field["pixel_variance"] * (j.T @ j)
        eps2, eps_mean = span_error(m, field["white_variance"])
        eps2 = max(eps2, eps_seen ** 2 + (field["pixel_variance"] / uu if uu > 0 else 0.0))
        span_cov += eps2 * np.outer(g, g)
        spectra.append({**field, "span_rms": float(np.sqrt(eps2)), "span_mean": eps_mean, "span_seen": eps_seen})
        v_pix += field["pixel_variance"] * field["n_pixels"]
        n_pix += int(field["n_pixels"])
    j_out = jac[outside]
    middle += sigma2 * (j_out.T @ j_out + extra)
    lack = c @ middle @ c
    return {"covariance": lack + span_cov, "covariance_statistical": sigma2 * c, "sigma2": sigma2,
            "lack_of_fit": lack, "span": span_cov, "spectra": spectra,
            "lack_of_fit_inflation": float(np.sqrt(v_pix / max(n_pix, 1) / sigma2)) if sigma2 > 0 else 1.0,
            "meaning": STD_MEANING}


def model_error_inflation(residuals, masks, n_params: int = 0) -> dict[str, float]:
    """Summary of the residual field of one or several maps (a joint fit); diagnostics beside the calibrated
    covariance of :func:`calibrated_covariance` (which also needs the Jacobian for the span part).

    ``residuals``/``masks``: one (n_E, n_Q) map or lists of them; ``n_params`` p. Returns {"inflation":
    sqrt((n − p)/(n_eff − p)) with the lag-one AR(1) n_eff of :func:`effective_pixels` (≈ 1 for white residuals,
    large for a smooth lack of fit), "lack_of_fit_inflation": sqrt(pooled v / (SSR/(n − p))), the multiplier of
    the Gauss–Newton std from part 1 of the rule, "n_pixels", "n_effective" (AR(1)), "n_cells" (Σ n_i/(τ_E τ_Q)),
    "white_fraction", "tau_energy", "tau_q", "rho_energy", "rho_q" (pixel-weighted means)}.
    """
    if isinstance(residuals, np.ndarray) and residuals.ndim == 2:
        residuals, masks = [residuals], [masks]
    fields = [residual_field(r, m) for r, m in zip(residuals, masks)]
    lag = [effective_pixels(r, m) for r, m in zip(residuals, masks)]
    n = sum(f["n_pixels"] for f in fields)
    n_eff = sum(q["n_effective"] for q in lag)
    w = np.array([f["n_pixels"] for f in fields]) / max(n, 1.0)
    sigma2 = sum(f["variance"] * f["n_pixels"] for f in fields) / max(n - n_params, 1.0)
    v = sum(f["pixel_variance"] * f["n_pixels"] for f in fields) / max(n, 1.0)

    def mean(key, parts):
        return float(sum(wi * q[key] for wi, q in zip(w, parts)))
    return {"inflation": float(np.sqrt(max(n - n_params, 1.0) / max(n_eff - n_params, 1.0))),
            "lack_of_fit_inflation": float(np.sqrt(v / sigma2)) if sigma2 > 0 else 1.0, "n_pixels": n,
            "n_effective": n_eff, "n_cells": float(sum(f["n_effective"] for f in fields)),
            "white_fraction": mean("white_fraction", fields), "tau_energy": mean("tau_energy", fields),
            "tau_q": mean("tau_q", fields), "rho_energy": mean("rho_energy", lag), "rho_q": mean("rho_q", lag)}


def coverage(estimate: np.ndarray, std: np.ndarray, truth: np.ndarray, z: float = 1.0) -> float:
    """Fraction of finite intervals estimate ± z·std that contain the truth (nominal 68 % for z = 1)."""
    e, s, t = (np.asarray(v, float).ravel() for v in (estimate, std, truth))
    ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(t)
    return float((np.abs(e[ok] - t[ok]) <= z * s[ok]).mean()) if ok.any() else float("nan")
