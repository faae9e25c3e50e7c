"""One-sigma uncertainties of fitted parameters from the Gauss–Newton curvature at the optimum.

J by central finite differences (one batched simulator call), covariance σ²·(JᵀJ)⁻¹ with the residual variance
σ² = SSR / (n_pixels − n_params); with a fitted background its slope b1 is an explicit extra parameter. A prior
(:mod:`.priors`) enters as its residual rows, with or without the background.
"""
from __future__ import annotations

import numpy as np
import torch

from phonon_ml_core.fitting.problem import FitProblem


def gauss_newton_jacobian(prob: FitProblem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Residuals r0 (n,) at ``theta`` and their Jacobian J (n, P') by central differences (one batched call).

    With a fitted background its slope b1 is an explicit last column (P' = P + 1); prior rows, when present, are
    the last rows. Returns (r0, J, note); J is NaN where no finite difference exists and the note says why.
    """
    p = prob.n_params
    h = 1e-3 * prob.width
    pts = np.repeat(theta[None], 2 * p + 1, 0)
    for i in range(p):
        pts[1 + 2 * i, i] += h[i]
        pts[2 + 2 * i, i] -= h[i]
    with torch.no_grad():
        if prob.fit_background:  # b1 as an explicit extra parameter at its optimum (no extra simulator call)
            y = prob.simulate(torch.as_tensor(pts, dtype=prob.sim.dtype))[:, prob.mask]
            bad = ~torch.isfinite(y).all(1)
            y = torch.where(bad[:, None], torch.zeros_like(y), y)
            b_hat = prob.best_background(y[:1])[0]
            hb = 1e-3 * (prob.b_bounds[1] - prob.b_bounds[0])
            r = torch.where(bad[:, None], torch.zeros_like(y), prob.model(y, b_hat.expand(len(y))) - prob.x)
            rb = prob.model(y[:1].expand(2, -1), torch.stack([b_hat + hb, b_hat - hb])) - prob.x
            r = torch.cat([r, rb])
            if prob.prior is not None:  # the prior's rows (b1 does not enter them): as in FitProblem.residuals
                c = torch.as_tensor(pts[:, :prob.n_constants], dtype=r.dtype)
                r = torch.cat([r, prob.prior.residual_rows(torch.cat([c, c[:1], c[:1]]), prob.sum_x2)], 1)
            bad = torch.cat([bad, bad[:1], bad[:1]])
            h = np.append(h, hb)
            p += 1
        else:
            r, bad = prob.residuals(torch.as_tensor(pts, dtype=prob.sim.dtype))
    r = r.double().numpy()
    bad = bad.numpy()
    jac = np.empty((r.shape[1], p))
    for i in range(p):
        up, dn = 1 + 2 * i, 2 + 2 * i
        if not bad[up] and not bad[dn]:
            jac[:, i] = (r[up] - r[dn]) / (2 * h[i])
        elif not bad[up]:
            jac[:, i] = (r[up] - r[0]) / h[i]
        elif not bad[dn]:
            jac[:, i] = (r[0] - r[dn]) / h[i]
        else:
            jac[:, i] = np.nan
    note = "uncertainty unavailable (unstable neighbourhood)" if bad[0] or not np.isfinite(jac).all() else ""
    return r[0], jac, note


def parameter_uncertainty(prob: FitProblem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Std of the parameters from the Gauss–Newton curvature at ``theta`` (central differences, one call).

    Returns (std (P,), correlation (P, P), residual variance σ², note).
    """
    r0, jac, note = gauss_newton_jacobian(prob, theta)
    n, p = jac.shape
    sigma2 = float((r0 ** 2).sum()) / max(n - p, 1)
    if note:
        return np.full(p, np.nan), np.full((p, p), np.nan), sigma2, note
    cov, note = covariance_from_curvature(jac.T @ jac, sigma2)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    return std, corr, sigma2, note


def model_error_uncertainty(result, spectrum, cap: float | None = None) -> tuple[np.ndarray, dict]:
    """Std of a finished single fit (:class:`~phonon_ml_core.fitting.results.FitResult`) inflated for model error.

    The residual map (model − data on the spectrum's mask) gives the effective number of independent pixels and
    the calibrated std multiplier ``std_factor`` of :func:`phonon_ml_core.fitting.calibration.model_error_inflation`
    (``cap``: independent pixels per spectrum at most). Returns (std (K,) N/m, the inflation dict).
    ``spectrum``: the (mean-normalised) spectrum that was fitted.
    """
    from phonon_ml_core.fitting.calibration import model_error_inflation

    if result.simulated is None:
        raise ValueError("the fit result has no simulated spectrum: fit again (fit_spectrum keeps it)")
    resid = np.asarray(result.simulated.intensity, float) - np.asarray(spectrum.intensity, float)
    n_params = len(result.correlation) if result.correlation is not None else len(result.force_constants)
    info = model_error_inflation(resid, spectrum.grid.mask, n_params=n_params, cap=cap)
    return np.asarray(result.std, float) * info["std_factor"], info


def covariance_from_curvature(curvature: np.ndarray, sigma2: float) -> tuple[np.ndarray, str]:
    """σ² · curvature⁻¹ (Gauss–Newton covariance) and a note; the pseudo-inverse when the curvature is singular."""
    try:
        cov = sigma2 * np.linalg.inv(curvature)
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
            raise np.linalg.LinAlgError
        return cov, ""
    except np.linalg.LinAlgError:
        return sigma2 * np.linalg.pinv(curvature), "curvature singular: pseudo-inverse used for the uncertainties"
