"""Joint fit of a temperature series: every spectrum of one material fitted together (:func:`fit_joint`).

Each force constant is a smooth function of temperature (:mod:`.joint_model`: linear by default, quadratic, or
free per temperature with a smoothness penalty chosen by leave-one-temperature-out validation), each spectrum has
its own nuisance (linewidth γ, residual-background slope profiled exactly), and the lattice parameter follows the
material's a(T). One batched simulator call per grid per step; Levenberg–Marquardt steps with finite-difference
Jacobians from float32 twins of the simulators, then L-BFGS with autograd gradients in coordinates whitened by the
Gauss–Newton curvature. Uncertainties: Gauss–Newton covariance inflated for model error
(:mod:`.calibration`), identifiability from the Fisher information (:mod:`.identifiability`). docs/fitting.md.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import scipy.optimize
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.inputs import (
    prepare_spectrum,
    resolve_experiment,
    resolve_material,
    resolve_start_and_bounds,
)
from phonon_ml_core.fitting.joint_model import SERIES_MODELS, SeriesModel
from phonon_ml_core.fitting.joint_problem import WALL, JointProblem
from phonon_ml_core.fitting.joint_result import JointResult, build_result
from phonon_ml_core.fitting.joint_uncertainty import jacobian, joint_covariance, roughness_curvature
from phonon_ml_core.fitting.priors import GaussianPrior
from phonon_ml_core.fitting.problem import UNSTABLE_PENALTY
from phonon_ml_core.fitting.spectrum_fit import LINEWIDTH_BOUNDS, LINEWIDTH_START, torch_threads
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.powder import SimulationSettings
from phonon_ml_core.specs import Experiment, Material

#: Levenberg–Marquardt hands over to the L-BFGS polish once an iteration gains less than this fraction of the
#: objective. Each LM iteration costs a Jacobian of (K + 2)·N spectra, each polish evaluation N spectra with their
#: gradient (about 10× less); the polish, whitened by the Gauss–Newton curvature, finishes the slow tail (on the
#: shared aluminium series with four shells: 9 instead of 23 LM iterations to the same optimum with float64
#: Jacobians; docs/fitting.md, "Speed").
LM_RELATIVE_TOL = 1e-3
#: The same for the leave-one-temperature-out fits of the free model, which have no polish.
LOO_RELATIVE_TOL = 1e-5
#: Smoothness strengths tried by leave-one-temperature-out validation (free model), mean-NMSE units.
SMOOTHNESS_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


def _whiten(prob: JointProblem, theta: np.ndarray, slopes: list) -> np.ndarray:
    """A (P, P) with Aᵀ H A ≈ 1 for the Gauss–Newton Hessian H of the objective at θ (one batched call)."""
    with prob.fast_simulation():
        jac, _, _ = jacobian(prob, theta, slopes, central=False)
    jac = jac[:, :prob.n_params]
    if not np.isfinite(jac).all():
        return np.diag(prob.scale()) * 0.1
    hess = 2 * (jac.T @ jac + prob.n_spectra * prob.smoothness * roughness_curvature(prob)) / prob.n_spectra
    lam, vec = np.linalg.eigh(hess)
    lam = np.maximum(lam, 1e-6 * lam.max() + 1e-12)
    return vec / np.sqrt(lam)


def _profiled_slopes(prob: JointProblem, theta: np.ndarray) -> list:
    """The best background slope (1, N_g) per group at θ (zeros without a fitted background)."""
    t = torch.as_tensor(theta[None])
    fc, lw = prob.unpack(t)
    _, fcc, lwc = prob.wall(fc, lw)
    out = []
    with torch.no_grad():
        for g in prob.groups:
            _, s = prob.model_pixels(g, prob.simulate(g, fcc, lwc))
            out.append(torch.zeros(1, len(g.index), dtype=torch.float64) if s is None else s)
    return out


def _wall_residuals(prob: JointProblem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bound walls (and prior) as least-squares rows: (∂w/∂θ (M, P), w (M,)) with Σ w² = N × penalty."""
    def walls(th):
        fc, lw = prob.unpack(th[None])
        lo = torch.as_tensor(prob.bounds[:, 0])
        hi = torch.as_tensor(prob.bounds[:, 1])
        w = [((fc - torch.maximum(torch.minimum(fc, hi), lo)) / torch.as_tensor(prob.width)).reshape(-1)]
        if prob.fit_linewidth:
            a, b = prob.linewidth_bounds
            w.append(((lw - lw.clamp(a, b)) / (b - a)).reshape(-1))
        rows = torch.cat(w) * float(np.sqrt(prob.n_spectra * WALL))
        return rows if prob.prior is None else torch.cat([rows, prob.prior_rows(fc)[0]])
    th = torch.as_tensor(theta)
    return torch.autograd.functional.jacobian(walls, th).numpy(), walls(th).numpy()


def _levenberg_marquardt(prob: JointProblem, theta: np.ndarray, max_iter: int, max_calls: int,
                         tol: float | None = None) -> tuple[np.ndarray, float, str]:
    """Levenberg–Marquardt on Σ NMSE_i (+ N λ R for the free model) with the cheap per-spectrum Jacobian
    (one batched call of (K + 2) × N spectra in the fast twins, float32 by default; no gradient): the large steps
    before the L-BFGS polish; stops when an iteration gains less than ``tol`` (default :data:`LM_RELATIVE_TOL`) of
    the objective."""
    tol = LM_RELATIVE_TOL if tol is None else tol
    with torch.no_grad():
        _, f = prob.nmse(torch.as_tensor(theta[None]))
    f = float(f[0])
    mu, it, p, rel = 1e-2, 0, prob.n_params, 1.0
    rough = prob.n_spectra * prob.smoothness * roughness_curvature(prob)
    while it < max_iter and prob.calls < max_calls:
        it += 1
        slopes = _profiled_slopes(prob, theta)
        with prob.fast_simulation():
            jac, r0, _ = jacobian(prob, theta, slopes, central=False)
        jac = jac[:, :p]
        if not (np.isfinite(jac).all() and np.isfinite(r0).all()):
            break
        wj, wr = _wall_residuals(prob, theta)
        jac, r0 = np.vstack([jac, wj]), np.concatenate([r0, wr])
        a = jac.T @ jac + rough
        g = jac.T @ r0 + rough @ theta
        d = np.diag(a).copy()
        improved = False
        for _try in range(8):
            step = -np.linalg.solve(a + mu * np.diag(np.maximum(d, 1e-12 * d.max())), g)
            trial = theta + step
            with torch.no_grad():
                _, ft = prob.nmse(torch.as_tensor(trial[None]))
            ft = float(ft[0])
            if ft < f:
                improved = True
                rel = (f - ft) / max(f, 1e-12)
                theta, f, mu = trial, ft, max(mu / 5, 1e-7)
                break
            mu *= 8
        if not improved or rel < tol:
            break
    return theta, f, f"Levenberg–Marquardt: {it} iterations, objective {f:.5f}"


def _lbfgs(prob: JointProblem, theta0: np.ndarray, max_calls: int) -> tuple[np.ndarray, float, bool, str]:
    """L-BFGS polish from θ0 with autograd gradients, whitened at θ0; returns (θ, objective, converged, message)."""
    a_mat = _whiten(prob, theta0, _profiled_slopes(prob, theta0))
    cache: dict[bytes, tuple[float, np.ndarray]] = {}

    def fun_grad(z):
        key = z.tobytes()
        if key not in cache:
            t = torch.tensor((theta0 + a_mat @ z)[None], requires_grad=True)
            _, obj = prob.nmse(t)
            if obj[0] >= UNSTABLE_PENALTY:
                cache[key] = (float(obj.detach()[0]), np.zeros_like(z))
            else:
                obj.sum().backward()
                cache[key] = (float(obj.detach()[0]), a_mat.T @ t.grad[0].numpy())
        return cache[key]

    f0 = fun_grad(np.zeros(prob.n_params))[0]
    left = max_calls - prob.calls
    if left < 5:
        return theta0, f0, False, "no budget left for the L-BFGS polish"
    res = scipy.optimize.minimize(fun_grad, np.zeros(prob.n_params), jac=True, method="L-BFGS-B",
                                  options={"maxfun": left, "ftol": 1e-6, "gtol": 1e-5, "maxcor": 30})
    f = fun_grad(res.x)[0]
    if f > f0:
        return theta0, f0, bool(res.success), f"L-BFGS polish did not improve ({res.nfev} evaluations)"
    return theta0 + a_mat @ res.x, f, bool(res.success), \
        f"L-BFGS polish: objective {f:.5f}, {res.nfev} evaluations ({res.message})"


def fit_joint(spectra: Spectrum | Sequence[Spectrum], material: Material | None = None,
              experiment: Experiment | Sequence[Experiment] | None = None, model: str = "linear",
              fit_linewidth: bool = True, fit_background: bool = True, linewidth: float | None = None,
              linewidth_bounds: tuple[float, float] = LINEWIDTH_BOUNDS, start=None, bounds=None,
              smoothness: float | None = None, smoothness_grid: Sequence[float] = SMOOTHNESS_GRID,
              max_evaluations: int = 400, settings: SimulationSettings | None = None, simulators=None,
              uncertainty: bool = True, threads: int | None = 1, temperatures: Sequence[float] | None = None,
              prior: GaussianPrior | None = None, fast_jacobian: bool = True) -> JointResult:
    """Fit all spectra of a temperature series of one material together.

    Args:
        spectra: the spectra (a set or a list; mean-normalised χ'' or S), each with its temperature (K).
        material: default the spectra's (all must agree), else ALUMINIUM.
        experiment: one for all spectra, or one per spectrum; default each spectrum's (or its grid's defaults), as
            in ``fit_spectrum``.
        model: "linear" (default) or "quadratic" in T, or "free" (one set per temperature with a smoothness
            penalty on the second differences in T; its strength ``smoothness`` is chosen by leave-one-temperature-
            out validation over ``smoothness_grid`` when not given).
        fit_linewidth: a γ (HWHM = γ·E) per spectrum; otherwise the fixed ``linewidth`` (None = none).
        fit_background: a residual-background slope per spectrum, profiled exactly.
        start: (K,) constants (N/m) used at every temperature; default the material's reference.
        bounds: (K, 2) N/m that the constants must stay in at every temperature; default the material's fit bounds.
        max_evaluations: budget of batched objective evaluations (each one simulator call per grid).
        simulators: optional ready simulators, one per spectrum (tests).
        uncertainty: covariance of the series parameters, model-error inflation and identifiability.
        temperatures: override the spectra's temperatures (K).
        prior: Gaussian priors on the constants at every temperature (:func:`.priors.reference_prior`; for extra
            shells, ``material.with_shells(n)``); the covariance is the data's alone.
        fast_jacobian: the optimiser's finite-difference Jacobians (Levenberg–Marquardt steps, whitening) from
            float32 twins of the simulators (same factory, about 2× cheaper per spectrum); objective values,
            gradients and the covariance stay float64. Ignored with ``simulators`` given (they are used for all).
    """
    with torch_threads(threads):
        return _fit_joint(spectra, material, experiment, model, fit_linewidth, fit_background, linewidth,
                          linewidth_bounds, start, bounds, smoothness, smoothness_grid, max_evaluations, settings,
                          simulators, uncertainty, temperatures, prior, fast_jacobian)


def _inputs(spectra, material, experiment, temperatures, notes):
    items = list(spectra)
    if len(items) < 2:
        raise ValueError(f"a joint fit needs at least two spectra at different temperatures, got {len(items)}: "
                         "use fit_spectrum for one spectrum")
    items = [prepare_spectrum(s, notes) for s in items]
    mats = [resolve_material(s, material) for s in items]
    if any(not m.same_as(mats[0]) for m in mats):
        raise ValueError("the spectra belong to different materials (" + ", ".join(sorted({m.name for m in mats}))
                         + "): fit each material's series in its own joint fit")
    if experiment is None or isinstance(experiment, Experiment):
        experiment = [experiment] * len(items)
    if len(experiment) != len(items):
        raise ValueError(f"{len(experiment)} experiments for {len(items)} spectra: give one, or one per spectrum")
    exps = [resolve_experiment(s, e) for s, e in zip(items, experiment)]
    if temperatures is not None and len(temperatures) != len(items):
        raise ValueError(f"{len(temperatures)} temperatures for {len(items)} spectra")
    t = np.array([s.temperatures()[0] if temperatures is None else float(temperatures[i])
                  for i, s in enumerate(items)], float)
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("every spectrum of a joint fit needs a temperature (K): give temperatures= / --temperature")
    return items, mats[0], exps, t


def _fit_joint(spectra, material, experiment, model, fit_linewidth, fit_background, linewidth, linewidth_bounds,
               start, bounds, smoothness, smoothness_grid, max_evaluations, settings, simulators, uncertainty,
               temperatures, prior=None, fast_jacobian=True) -> JointResult:
    if model not in SERIES_MODELS:
        raise ValueError(f"unknown series model {model!r}: choose one of {SERIES_MODELS}")
    notes: list[str] = []
    items, mat, exps, temps = _inputs(spectra, material, experiment, temperatures, notes)
    series = SeriesModel(model, temps)
    x0, b = resolve_start_and_bounds(start, bounds, mat, notes)
    if prior is not None:
        prior.check_names(mat.names)
    if simulators is None:
        sims = [get_simulator(mat, e, grid=s.grid, quantity=s.quantity, settings=settings) for s, e in zip(items, exps)]
        fasts = sims if not fast_jacobian else [
            get_simulator(mat, e, grid=s.grid, quantity=s.quantity, settings=settings, dtype=torch.float32)
            for s, e in zip(items, exps)]
    else:
        sims = fasts = list(simulators)
        if len(sims) != len(items):
            raise ValueError(f"{len(sims)} simulators for {len(items)} spectra")
    g0 = float(np.clip(LINEWIDTH_START if linewidth is None else linewidth, *linewidth_bounds))
    t0 = time.perf_counter()
    chosen, validation = smoothness, None
    if model == "free" and smoothness is None:
        chosen, validation = _choose_smoothness(items, sims, temps, x0, b, fit_linewidth, linewidth_bounds,
                                                linewidth, fit_background, smoothness_grid, g0, max_evaluations, prior,
                                                fasts)
    prob = JointProblem(items, sims, temps, series, b, fit_linewidth, linewidth_bounds,
                        None if fit_linewidth else linewidth, fit_background, chosen or 0.0, prior, fasts)
    theta, _, msg_lm = _levenberg_marquardt(prob, prob.start(x0, g0), 25, max_evaluations // 2)
    theta, f, ok, msg = _lbfgs(prob, theta, max_evaluations)
    msg = f"{msg_lm}; {msg}"
    if f >= UNSTABLE_PENALTY:
        raise ValueError("no dynamically stable series of force constants was found within the bounds: check the "
                         "start and the bounds")
    unc = joint_covariance(prob, theta, _profiled_slopes(prob, theta)) if uncertainty else None
    seconds = time.perf_counter() - t0
    if not ok:
        notes.append("did not converge within the evaluation budget: returning the best point found")
    return build_result(prob, theta, mat, exps, items, unc, seconds, ok, "; ".join([msg, *notes]), chosen,
                        validation, _profiled_slopes(prob, theta))


def _choose_smoothness(items, sims, temps, x0, b, fit_linewidth, linewidth_bounds, linewidth, fit_background,
                       grid, g0, max_evaluations, prior=None, fasts=None) -> tuple[float, dict]:
    """Leave-one-temperature-out choice of λ: for each λ, fit the others, predict the left-out constants by linear
    interpolation in T, score the left-out spectrum's NMSE (its γ chosen from a few values). Returns (λ, scores)."""
    n = len(items)
    scores = {}
    for lam in grid:
        errs = []
        for i in range(n):
            keep = [j for j in range(n) if j != i]
            sub = SeriesModel("free", temps[keep])
            prob = JointProblem([items[j] for j in keep], [sims[j] for j in keep], temps[keep], sub, b, fit_linewidth,
                                linewidth_bounds, None if fit_linewidth else linewidth, fit_background, lam, prior,
                                None if fasts is None else [fasts[j] for j in keep])
            th, _, _ = _levenberg_marquardt(prob, prob.start(x0, g0), 12, max(max_evaluations // 3, 6),
                                            tol=LOO_RELATIVE_TOL)
            fc, lw = prob.unpack(torch.as_tensor(th[None]))
            w = torch.as_tensor(sub.design(np.array([temps[i]])))
            fc_i = (w @ fc[0]).detach()
            one = JointProblem([items[i]], [sims[i]], temps[[i]], SeriesModel("free", temps[[i]]), b, False,
                               linewidth_bounds, None, fit_background)
            gammas = np.geomspace(linewidth_bounds[0], linewidth_bounds[1], 7) if fit_linewidth else [linewidth]
            best = np.inf
            for gm in gammas:
                one.fixed_linewidth = gm
                with torch.no_grad():
                    v, _ = one.nmse(fc_i.reshape(1, -1))
                best = min(best, float(v[0, 0]))
            errs.append(best)
        scores[float(lam)] = float(np.mean(errs))
    lam = min(scores, key=scores.get)
    return lam, {"method": "leave-one-temperature-out", "mean_nmse_left_out": scores, "chosen": lam}
