"""One-sigma uncertainties of fitted parameters from the Gauss–Newton curvature at the optimum.

J by central finite differences (one batched simulator call), covariance σ²·(JᵀJ)⁻¹ with the residual variance
σ² = SSR / (n_pixels − n_params); with a fitted background its slope b1 is an explicit extra parameter. A prior
(:mod:`.priors`) enters as its residual rows, with or without the background. :func:`model_error_uncertainty`
calibrates a finished fit's std for model error (:mod:`.calibration`).
"""
from __future__ import annotations

import numpy as np
import torch

from phonon_ml_core.fitting.calibration import STD_MEANING, calibrated_covariance, model_error_inflation
from phonon_ml_core.fitting.defaults import FIT_DEFAULTS
from phonon_ml_core.fitting.inputs import resolve_start_and_bounds
from phonon_ml_core.fitting.linewidth import OFFSET_BOUNDS
from phonon_ml_core.fitting.priors import GaussianPrior
from phonon_ml_core.fitting.problem import FitProblem
from phonon_ml_core.simulator.factory import get_simulator


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
    return gauss_newton_std(*gauss_newton_jacobian(prob, theta))


def gauss_newton_std(r0: np.ndarray, jac: np.ndarray, note: str) -> tuple[np.ndarray, np.ndarray, float, str]:
    """:func:`parameter_uncertainty` from the residuals, Jacobian and note of :func:`gauss_newton_jacobian`."""
    n, p = jac.shape
    sigma2 = float((r0 ** 2).sum()) / max(n - p, 1)
    if note:
        return np.full(p, np.nan), np.full((p, p), np.nan), sigma2, note
    cov, note = covariance_from_curvature(jac.T @ jac, sigma2)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    return std, corr, sigma2, note


def problem_for_result(result, spectrum, simulator=None) -> tuple[FitProblem, np.ndarray]:
    """The :class:`FitProblem` of a finished single fit and its parameters θ̂ (constants, γ, γ0 as fitted).

    ``spectrum``: the (mean-normalised) spectrum that was fitted; ``simulator``: the one the fit used (default: the
    cached factory's for the result's material and experiment on the spectrum's grid). The finite-difference steps
    use the material's default bounds (the step is 10⁻³ of the width: the uncertainty does not depend on it).
    """
    material = result.material
    sim = simulator if simulator is not None else get_simulator(material, result.experiment, grid=spectrum.grid,
                                                                 quantity=spectrum.quantity)
    _, bounds = resolve_start_and_bounds(None, None, material, [])
    theta = list(result.force_constants)
    fit_lw = result.linewidth_std is not None
    affine = result.linewidth_offset is not None
    if fit_lw:
        bounds = np.vstack([bounds, FIT_DEFAULTS.linewidth_bounds])
        theta.append(result.linewidth)
        if affine:
            bounds = np.vstack([bounds, OFFSET_BOUNDS])
            theta.append(result.linewidth_offset)
    prior = None
    if result.prior is not None:
        d = result.prior
        prior = GaussianPrior(tuple(d["names"]), tuple(d["mean"]),
                              tuple(np.inf if s is None else s for s in d["sigma"]), d["weight"])
    prob = FitProblem(sim, spectrum, result.temperature, result.lattice_parameter, bounds, fit_lw,
                      None if fit_lw else result.linewidth, result.background is not None, names=material.names,
                      linewidth_offset=affine, prior=prior)
    return prob, np.asarray(theta, float)


def model_error_uncertainty(result, spectrum, simulator=None) -> tuple[np.ndarray, dict]:
    """Calibrated std of a finished single fit (:class:`~phonon_ml_core.fitting.results.FitResult`), N/m.

    Recomputes the Jacobian at the optimum (one batched simulator call of 2P + 1 spectra) and applies
    :func:`calibrated_from_jacobian`. ``spectrum``: the (mean-normalised) spectrum that was fitted; ``simulator``:
    the fit's (default: the cached factory's). :func:`~phonon_ml_core.fitting.spectrum_fit.fit_spectrum` reports
    the same figure as ``FitResult.std_calibrated`` from the Jacobian it already has.
    """
    prob, theta = problem_for_result(result, spectrum, simulator)
    r0, jac, note = gauss_newton_jacobian(prob, theta)
    return calibrated_from_jacobian(prob, r0, jac, note, result.material.n_constants)


def calibrated_from_jacobian(prob: FitProblem, r0: np.ndarray, jac: np.ndarray, note: str,
                             k: int) -> tuple[np.ndarray, dict]:
    """Std of the first ``k`` parameters (the constants, N/m) calibrated for model error.

    :func:`phonon_ml_core.fitting.calibration.calibrated_covariance` (lack of fit from the residual field, span
    normalisation error) on the residuals ``r0`` and Jacobian ``jac`` of :func:`gauss_newton_jacobian`. Returns
    (std (k,), details: calibrated_covariance's dict plus "std_factor" (k,) = calibrated / Gauss–Newton std,
    model_error_inflation's diagnostics ("inflation": the lag-one pixel correlation alone, "rho_energy", ...),
    "covariance_constants" (k, k) (N/m)²); NaN std and the note when the Jacobian is unavailable.
    """
    if note:
        nan = np.full(k, np.nan)
        return nan, {"std_factor": nan, "note": note, "meaning": STD_MEANING}
    n_pix = int(prob.mask.sum())
    mask = np.asarray(prob.mask_np, bool)
    model = r0[:n_pix] + prob.x.double().numpy()
    out = calibrated_covariance(jac, r0, [slice(0, n_pix)], [mask], [model])
    rmap = np.full(mask.shape, np.nan)
    rmap[mask] = r0[:n_pix]
    out.update(model_error_inflation(rmap, mask, n_params=jac.shape[1]))
    cov = out["covariance"][:k, :k]
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    stat = np.sqrt(np.clip(np.diag(out["covariance_statistical"])[:k], 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["std_factor"] = std / stat
    out["covariance_constants"] = cov
    return std, out


def covariance_from_curvature(curvature: np.ndarray, sigma2: float) -> tuple[np.ndarray, str]:
    """σ² · curvature⁻¹ (Gauss–Newton covariance) and a note; the pseudo-inverse when the curvature is singular."""
    try:
        cov = sigma2 * np.linalg.inv(curvature)
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
            raise np.linalg.LinAlgError
        return cov, ""
    except np.linalg.LinAlgError:
        return sigma2 * np.linalg.pinv(curvature), "curvature singular: pseudo-inverse used for the uncertainties"
