"""Least-squares fits of force constants to one powder spectrum or a temperature series.

Both methods minimise the NMSE of conventions §3 between the (mean-normalised) input spectrum and the
spectrum the :class:`~phonon_ml_core.simulator.powder.PowderSimulator` gives for the trial constants:

* ``"nelder-mead"``: scipy's bounded Nelder–Mead on parameters scaled to the unit box;
* ``"gradient"``: torch autograd through the simulator: several starts optimised together (projected Adam on
  one batched simulator call per step), then the best start polished by L-BFGS-B with exact gradients.

Optionally the intrinsic linewidth γ (HWHM = γ·E) is a sixth, nuisance parameter, and a residual background
linear in energy transfer is profiled out (``fit_background``: the model is normalise(y_sim + b0 + b1·(E − Ē)), b1
solved exactly at each evaluation by a 1-D search; b0 cancels in the normalisation). Unstable trial constants
(imaginary frequencies) get a large penalty, never a NaN. Standard deviations come from the Gauss–Newton
curvature JᵀJ of the sum of squared residuals at the optimum (J by central finite differences, one batched
simulator call), scaled by the residual variance σ² = SSR / (n_pixels − n_params). See docs/fitting.md.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.optimize
import torch

from phonon_ml_core.physics.units import AL_REFERENCE_FC, FORCE_CONSTANT_NAMES
from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.data.normalization import is_mean_normalized
from phonon_ml_core.fitting.residual_background import (SLOPE_LIMIT, best_slope, centred_energy, default_slope_bounds, profile,
                                  with_slope)
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
from phonon_ml_core.data.spectrum import Spectrum

log = logging.getLogger(__name__)

METHODS = ("nelder-mead", "gradient")
#: Objective value (NMSE units) given to dynamically unstable trial constants.
UNSTABLE_PENALTY = 1.0e3
#: Default start and bounds of the linewidth γ (HWHM = γ·E) when it is fitted.
LINEWIDTH_START = 0.03
LINEWIDTH_BOUNDS = (1.0e-3, 0.3)
#: Default bound on |b1| (background slope, simulated-span units per meV) times the energy range of the valid pixels:
#: the background may change by up to two spans of the simulated spectrum across the energy range.
BACKGROUND_SLOPE_LIMIT = SLOPE_LIMIT


# ---------------------------------------------------------------------------------------------- results
@dataclass
class FitResult:
    """Outcome of :func:`fit_spectrum`.

    Attributes:
        force_constants: best constants, N/m, (5,) in the order [1XX, 1XY, 1ZZ, 2XX, 2YY].
        std: one-sigma uncertainties of the constants, N/m, (5,) (NaN when the curvature is singular).
        linewidth: fitted γ (HWHM = γ·E) when it was free, the fixed value given, or None.
        linewidth_std: its uncertainty when fitted, else None.
        nmse: NMSE of the simulated spectrum against the (normalised) input at the best point.
        evaluations: simulator calls (a batched call counts once), including the uncertainty estimate.
        spectra_simulated: spectra simulated in all those calls.
        seconds: wall time of the fit (optimisation and uncertainty; not the simulator construction).
        converged: whether the optimiser met its tolerance before its evaluation budget.
        message: the optimiser's message and any notes (normalisation, clipping).
        method: "nelder-mead" or "gradient".
        temperature, lattice_parameter: those used (K, Å; lattice None = the simulator's a(T)).
        start: the starting constants.
        correlation: correlation matrix of the free parameters (5 or 6).
        simulated: the model spectrum at the best point (mean-normalised, same grid; with ``fit_background`` it
            includes the fitted background, i.e. it is exactly what the NMSE compares with the input).
        background: with ``fit_background``, the coefficients (b0, b1) of b(E) = b0 + b1·(E − Ē) added to the
            mean-normalised simulated spectrum before normalisation (units: its span; b1 per meV). b0 cancels in the
            mean normalisation (it is not identifiable) and is reported as 0. None without ``fit_background``.
        background_std: (b0_std, b1_std) (b0_std None: not identifiable), or None.
        background_energy_mean: Ē (meV), the mean energy transfer over the valid pixels, or None.
    """

    force_constants: np.ndarray
    std: np.ndarray
    linewidth: float | None
    nmse: float
    evaluations: int
    seconds: float
    converged: bool
    message: str
    method: str
    temperature: float
    lattice_parameter: float | None = None
    linewidth_std: float | None = None
    spectra_simulated: int = 0
    start: np.ndarray | None = None
    correlation: np.ndarray | None = None
    simulated: Spectrum | None = None
    background: tuple[float, float] | None = None
    background_std: tuple[float | None, float | None] | None = None
    background_energy_mean: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (the RESULT.json entry of ``phonon-ml fit``)."""
        return {
            "force_constants": [float(x) for x in self.force_constants],
            "std": [None if not np.isfinite(x) else float(x) for x in self.std],
            "names": list(FORCE_CONSTANT_NAMES),
            "units": "N/m",
            "nmse": float(self.nmse),
            "evaluations": int(self.evaluations),
            "spectra_simulated": int(self.spectra_simulated),
            "seconds": float(self.seconds),
            "converged": bool(self.converged),
            "message": self.message,
            "method": self.method,
            "temperature": float(self.temperature),
            "lattice_parameter": None if self.lattice_parameter is None else float(self.lattice_parameter),
            "linewidth": None if self.linewidth is None else float(self.linewidth),
            "linewidth_std": None if self.linewidth_std is None or not np.isfinite(self.linewidth_std)
            else float(self.linewidth_std),
            "start": None if self.start is None else [float(x) for x in self.start],
            "mean_square_frequency_combination": float(msq_combination(self.force_constants)),
            "background": None if self.background is None else {
                "b0": float(self.background[0]), "b1": float(self.background[1]),
                "b1_std": None if self.background_std is None or self.background_std[1] is None
                or not np.isfinite(self.background_std[1]) else float(self.background_std[1]),
                "energy_mean": None if self.background_energy_mean is None else float(self.background_energy_mean),
                "model": "normalise(y_sim + b0 + b1*(E - energy_mean)); b in units of the span of the mean-normalised "
                         "simulated spectrum, b1 per meV; b0 cancels in the normalisation and is reported as 0"},
        }


def msq_combination(fc: np.ndarray) -> np.ndarray:
    """M⟨ω²⟩ combination 4(2·1XX + 1ZZ) + 2(2XX + 2·2YY) in N/m (conventions §1): well pinned by powder data."""
    f = np.asarray(fc, dtype=float)
    return 4 * (2 * f[..., 0] + f[..., 2]) + 2 * (f[..., 3] + 2 * f[..., 4])


# ---------------------------------------------------------------------------------------------- simulator cache
_SIM_CACHE: dict[tuple, PowderSimulator] = {}


def get_simulator(grid, quantity: str = "chi''", settings: SimulationSettings | None = None,
                  dtype: torch.dtype = torch.float64) -> PowderSimulator:
    """A cached :class:`PowderSimulator` for ``grid`` (building one takes about a second)."""
    st = replace(settings) if settings is not None else SimulationSettings()
    st.quantity, st.normalize = quantity, True
    key = (grid.mask_hash(), grid.ei_mev, tuple(grid.two_theta_deg), tuple(np.round(grid.q_edges, 9)),
           tuple(np.round(grid.energy_edges, 9)), tuple(sorted(st.to_dict().items())), dtype)
    if key not in _SIM_CACHE:
        try:
            _SIM_CACHE[key] = PowderSimulator(grid=grid, settings=st, dtype=dtype)
        except ValueError as exc:
            raise ValueError(f"the simulator cannot handle this spectrum's grid: {exc}") from exc
        if len(_SIM_CACHE) > 8:
            _SIM_CACHE.pop(next(iter(_SIM_CACHE)))
    return _SIM_CACHE[key]


# ---------------------------------------------------------------------------------------------- helpers
def default_bounds(reference: np.ndarray = AL_REFERENCE_FC) -> np.ndarray:
    """(5, 2) bounds: 0.3–2 × |reference| with the reference's sign; 2YY in [−2, 2] N/m."""
    ref = np.asarray(reference, dtype=float)
    lo = np.where(ref > 0, 0.3 * ref, 2.0 * ref)
    hi = np.where(ref > 0, 2.0 * ref, 0.3 * ref)
    b = np.stack([lo, hi], 1)
    b[4] = (-2.0, 2.0)
    return b


def _prepare_spectrum(spectrum: Spectrum, notes: list[str]) -> Spectrum:
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"expected a phonon_ml_core.data.spectrum.Spectrum, got {type(spectrum).__name__}")
    if spectrum.is_set:
        raise ValueError(f"the spectrum is a set of {spectrum.n_spectra}; fit its members one by one "
                         "(spectrum[i]) or use fit_series")
    mask = spectrum.grid.mask
    v = np.asarray(spectrum.intensity, dtype=float)[mask]
    if v.size == 0 or not np.isfinite(v).any():
        raise ValueError("the spectrum has no finite values on its valid pixels (all NaN?): nothing to fit")
    if not np.isfinite(v).all():
        raise ValueError(f"the spectrum has {int((~np.isfinite(v)).sum())} NaN/infinite values on valid pixels of "
                         "its mask: mask them in the grid (or preprocess the file) before fitting")
    if np.ptp(v) <= 0:
        raise ValueError("the spectrum is constant on its valid pixels: nothing to fit")
    if spectrum.normalization != "mean" or not is_mean_normalized(spectrum.intensity, mask, atol=1e-3):
        notes.append("input was not mean-normalised; normalised it (conventions §3) before fitting")
        spectrum = replace(spectrum, normalization="none").normalized()
    return spectrum


def _resolve_start_and_bounds(start, bounds, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if start is not None and np.size(start) == 0:  # an empty list (e.g. an unset Mantid property) = default
        start = None
    x0 = AL_REFERENCE_FC.copy() if start is None else np.asarray(start, dtype=float).reshape(-1)
    if x0.shape != (5,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"start must be 5 finite force constants [1XX, 1XY, 1ZZ, 2XX, 2YY] in N/m, got {x0}")
    if bounds is None:
        b = default_bounds()
        outside = (x0 < b[:, 0]) | (x0 > b[:, 1])
        if outside.any():
            for i in np.where(outside)[0]:  # widen the default box to hold the start, with a margin
                b[i, 0] = min(b[i, 0], x0[i] - 0.25 * abs(x0[i]) - 0.1)
                b[i, 1] = max(b[i, 1], x0[i] + 0.25 * abs(x0[i]) + 0.1)
            notes.append("default bounds widened to contain the start for " +
                         ", ".join(FORCE_CONSTANT_NAMES[i] for i in np.where(outside)[0]))
    else:
        b = np.asarray(bounds, dtype=float)
        if b.shape != (5, 2) or not np.all(b[:, 1] > b[:, 0]):
            raise ValueError("bounds must be a (5, 2) array of (low, high) pairs with low < high, N/m")
        if np.any((x0 < b[:, 0]) | (x0 > b[:, 1])):
            notes.append("start clipped into the bounds")
            x0 = np.clip(x0, b[:, 0], b[:, 1])
    return x0, b


class _Problem:
    """The objective on the unit box u ∈ [0, 1]^P ↔ physical parameters θ = lo + u (hi − lo)."""

    def __init__(self, sim: PowderSimulator, spectrum: Spectrum, temperature: float, lattice_parameter,
                 bounds: np.ndarray, fit_linewidth: bool, fixed_linewidth: float | None, fit_background: bool = False,
                 background_bounds: tuple[float, float] | None = None):
        self.sim = sim
        self.mask_np = spectrum.grid.mask
        self.mask = torch.as_tensor(self.mask_np.copy())
        self.x = torch.as_tensor(np.asarray(spectrum.intensity, dtype=float)[self.mask_np], dtype=sim.dtype)
        self.sum_x2 = float((self.x ** 2).sum())
        self.temperature = temperature
        self.lattice_parameter = lattice_parameter
        self.fit_linewidth = fit_linewidth
        self.fixed_linewidth = fixed_linewidth
        self.lo = bounds[:, 0].copy()
        self.width = bounds[:, 1] - bounds[:, 0]
        self.n_params = len(self.lo)
        self.calls = 0
        self.spectra = 0
        self.fit_background = bool(fit_background)
        self.energy_mean = None
        if self.fit_background:
            self.e, self.energy_mean = centred_energy(spectrum.grid, sim.dtype)
            self.b_bounds = (default_slope_bounds(self.e, BACKGROUND_SLOPE_LIMIT) if background_bounds is None
                             else (float(background_bounds[0]), float(background_bounds[1])))
            if not self.b_bounds[1] > self.b_bounds[0]:
                raise ValueError(f"background_bounds must be (low, high) with low < high, got {background_bounds}")

    def to_theta(self, u):
        if isinstance(u, torch.Tensor):
            return torch.as_tensor(self.lo, dtype=u.dtype) + u * torch.as_tensor(self.width, dtype=u.dtype)
        return self.lo + np.asarray(u) * self.width

    def to_u(self, theta: np.ndarray) -> np.ndarray:
        return (np.asarray(theta) - self.lo) / self.width

    def simulate(self, theta: torch.Tensor) -> torch.Tensor:
        """Simulated spectra (B, n_E, n_Q) for physical parameters (B, P)."""
        self.calls += 1
        self.spectra += theta.shape[0]
        fc = theta[:, :5]
        if self.fit_linewidth:
            lw = theta[:, 5]
        elif self.fixed_linewidth is not None:
            lw = torch.full((theta.shape[0],), float(self.fixed_linewidth), dtype=theta.dtype)
        else:
            lw = None
        return self.sim(fc, self.temperature, lattice_parameter=self.lattice_parameter, linewidth=lw,
                        allow_unstable=True)

    def model(self, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """normalise(y + b·(E − Ē)) over the valid pixels: y (..., n_pix), b (...) → (..., n_pix)."""
        return with_slope(y, b, self.e)

    def best_background(self, y: torch.Tensor) -> torch.Tensor:
        """The slope b1 (B,) in the background bounds that minimises the NMSE of each row of ``y`` (B, n_pix)
        (:func:`phonon_ml_core.fitting.residual_background.best_slope`: exact profiling, no simulator call)."""
        return best_slope(self.x, y, self.e, self.b_bounds)

    def residuals(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals model − x on the valid pixels (B, n_pix) and a bool (B,) of unstable sets.

        With ``fit_background`` the model is normalise(y + b1·(E − Ē)) with the best b1 of each row profiled
        (:func:`phonon_ml_core.fitting.residual_background.profile`).
        """
        y = self.simulate(theta)[:, self.mask]
        bad = ~torch.isfinite(y).all(1)
        if self.fit_background:
            y = profile(self.x, y, self.e, self.b_bounds)[0]
        r = torch.where(bad[:, None], torch.zeros_like(y), y - self.x)
        return r, bad

    def nmse_u(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """NMSE (B,) with the unstable penalty, from unit-box parameters (B, P)."""
        r, bad = self.residuals(self.to_theta(u))
        val = (r ** 2).sum(1) / self.sum_x2
        return torch.where(bad, torch.full_like(val, UNSTABLE_PENALTY), val), bad

    def nmse_np(self, u: np.ndarray) -> float:
        with torch.no_grad():
            v, _ = self.nmse_u(torch.as_tensor(np.asarray(u, dtype=float)[None], dtype=self.sim.dtype))
        return float(v[0])


def _uncertainty(prob: _Problem, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Std of the parameters from the Gauss–Newton curvature at ``theta`` (central differences, one call).

    Returns (std (P,), correlation (P, P), residual variance σ², note).
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
            bad = torch.cat([bad, bad[:1], bad[:1]])
            h = np.append(h, hb)
            p += 1
        else:
            r, bad = prob.residuals(torch.as_tensor(pts, dtype=prob.sim.dtype))
    r = r.double().numpy()
    bad = bad.numpy()
    n = r.shape[1]
    ssr = float((r[0] ** 2).sum())
    sigma2 = ssr / max(n - p, 1)
    jac = np.empty((n, p))
    note = ""
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
    if bad[0] or not np.isfinite(jac).all():
        return np.full(p, np.nan), np.full((p, p), np.nan), sigma2, "uncertainty unavailable (unstable neighbourhood)"
    curv = jac.T @ jac
    try:
        cov = sigma2 * np.linalg.inv(curv)
        if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = sigma2 * np.linalg.pinv(curv)
        note = "curvature singular: pseudo-inverse used for the uncertainties"
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    return std, corr, sigma2, note


# ---------------------------------------------------------------------------------------------- optimisers
def _fit_nelder_mead(prob: _Problem, u0: np.ndarray, max_evaluations: int, rng: np.random.Generator):
    p = prob.n_params
    step = 0.05
    simplex = np.repeat(u0[None], p + 1, 0)
    for i in range(p):
        simplex[i + 1, i] += step if u0[i] + step <= 1 else -step
    best = {"f": math.inf, "u": u0.copy()}

    def fun(u):
        f = prob.nmse_np(np.clip(u, 0, 1))
        if f < best["f"]:
            best["f"], best["u"] = f, np.clip(u, 0, 1).copy()
        return f

    res = scipy.optimize.minimize(fun, u0, method="Nelder-Mead", bounds=[(0.0, 1.0)] * p,
                                  options={"maxfev": max_evaluations, "initial_simplex": simplex,
                                           "xatol": 1e-4, "fatol": 1e-6, "adaptive": p > 4})
    u = np.clip(res.x, 0, 1)
    f = float(res.fun)
    if best["f"] < f:
        u, f = best["u"], best["f"]
    return u, f, bool(res.success), str(res.message)


WALL = 10.0  # NMSE per (unit-box distance)² outside the bounds, gradient polish


def _whitening(prob: _Problem, u: np.ndarray, free: np.ndarray | None = None) -> np.ndarray:
    """A (P, n_free) with Aᵀ H A ≈ 1 for the Gauss–Newton NMSE Hessian H of the free parameters at u.

    One-sided differences, one batched simulator call; rows of fixed parameters are zero.
    """
    p = prob.n_params
    free = np.ones(p, bool) if free is None else np.asarray(free, bool)
    h = 1e-3
    pts = np.repeat(u[None], p + 1, 0)
    for i in range(p):
        pts[1 + i, i] += h if u[i] + h <= 1 else -h
    with torch.no_grad():
        r, bad = prob.residuals(prob.to_theta(torch.as_tensor(pts, dtype=prob.sim.dtype)))
    r = r.double().numpy()
    if bad.any():
        return np.eye(p)[:, free] * 0.1
    jac = ((r[1:] - r[0]).T / (pts[1:] - u).sum(1))[:, free]
    hess = 2 * jac.T @ jac / prob.sum_x2
    lam, vec = np.linalg.eigh(hess)
    lam = np.maximum(lam, 1e-6 * lam.max() + 1e-12)
    out = np.zeros((p, int(free.sum())))
    out[free] = vec / np.sqrt(lam)
    return out


def _whitened_lbfgs(prob: _Problem, u_s: np.ndarray, free: np.ndarray, max_calls: int):
    """L-BFGS with autograd gradients over the ``free`` parameters, whitened at ``u_s``; clip + quadratic wall."""
    dtype = prob.sim.dtype
    a_mat = _whitening(prob, u_s, free)
    cache: dict[bytes, tuple[float, np.ndarray]] = {}

    def fun_grad(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in cache:
            uu = u_s + a_mat @ z
            uc = np.clip(uu, 0.0, 1.0)
            wall = WALL * float(((uu - uc) ** 2).sum())
            t = torch.tensor(uc[None], dtype=dtype, requires_grad=True)
            val, bad = prob.nmse_u(t)
            if bool(bad[0]):
                cache[key] = (UNSTABLE_PENALTY + wall, a_mat.T @ (2 * WALL * (uu - uc)))
            else:
                val.sum().backward()
                g = t.grad[0].detach().double().numpy() * (uu == uc) + 2 * WALL * (uu - uc)
                cache[key] = (float(val.detach()[0]) + wall, a_mat.T @ g)
        return cache[key]

    res = scipy.optimize.minimize(fun_grad, np.zeros(a_mat.shape[1]), jac=True, method="L-BFGS-B",
                                  options={"maxfun": max(max_calls, 3), "ftol": 1e-7, "gtol": 1e-4, "maxcor": 20})
    u_res = np.clip(u_s + a_mat @ res.x, 0.0, 1.0)
    f_res = prob.nmse_np(u_res)
    return u_res, f_res, bool(res.success), f"{f_res:.4f} {res.message}"


def _fit_gradient(prob: _Problem, u0: np.ndarray, max_evaluations: int, n_starts: int, adam_steps: int,
                  n_polish: int, rng: np.random.Generator):
    p = prob.n_params
    dtype = prob.sim.dtype
    # --- starts: the given one and perturbed copies (±25 % on the constants, 2YY uniform in [−1.5, 1.5] N/m,
    #     γ × e^{±0.5}): free fits trade the first shell against the second, so the landscape has several basins
    theta0 = prob.to_theta(u0)
    starts = [u0]
    for _ in range(max(n_starts, 1) - 1):
        theta = theta0.copy()
        theta[:4] = theta0[:4] * (1 + 0.25 * rng.standard_normal(4))
        theta[4] = rng.uniform(-1.5, 1.5)
        if p > 5:
            theta[5] = theta0[5] * math.exp(0.5 * rng.standard_normal())
        starts.append(np.clip(prob.to_u(theta), 0.0, 1.0))
    u = torch.tensor(np.array(starts), dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([u], lr=0.02)
    best_f = np.full(len(starts), np.inf)
    best_u = np.array(starts)
    last_good = u.detach().clone()
    t_adam = time.perf_counter()
    budget_adam = max(0, min(adam_steps, max_evaluations // 4))
    for _ in range(budget_adam):
        opt.zero_grad()
        vals, bad = prob.nmse_u(u)
        vals.sum().backward()
        v = vals.detach().numpy()
        better = v < best_f
        best_f[better] = v[better]
        best_u[better] = u.detach().numpy()[better]
        with torch.no_grad():
            if bad.any():  # unstable: go back to the last stable point of that start, with no step this time
                u.grad[bad] = 0.0
                u[bad] = last_good[bad]
            last_good = torch.where(bad[:, None], last_good, u.detach())
        opt.step()
        with torch.no_grad():
            u.clamp_(0.0, 1.0)
    if budget_adam == 0:
        with torch.no_grad():
            v, _ = prob.nmse_u(u)
        best_f, best_u = v.numpy(), u.detach().numpy()
    order = np.argsort(best_f)
    t_adam = time.perf_counter() - t_adam
    calls_adam = prob.calls
    # --- L-BFGS polish of the best `n_polish` starts with exact (autograd) gradients, in coordinates whitened by
    #     the Gauss–Newton curvature at the start (the valley trading first against second shell is long and
    #     narrow in the raw parameters, where L-BFGS stalls); the box is kept by clipping plus a quadratic wall.
    u_final, f_final, converged, lb_msgs = best_u[order[0]], float(best_f[order[0]]), False, []
    n_sel = min(n_polish, len(order))
    for k, j in enumerate(order[:n_sel]):
        remaining = max((max_evaluations - prob.calls) // (n_sel - k), 5)
        u_s, fixed, f_res, ok, rounds = best_u[j], np.zeros(p, bool), math.inf, False, []
        calls0 = prob.calls
        for _round in range(3):  # active set: constants that end on a bound are held there and the rest re-whitened
            left = remaining - (prob.calls - calls0)
            if fixed.all() or left < 4:
                break
            u_new, f_new, ok_new, m = _whitened_lbfgs(prob, u_s, ~fixed, left - 2)
            rounds.append(m)
            if f_new <= f_res:
                u_s, f_res, ok = u_new, f_new, ok_new
            at_bound = (u_s <= 1e-9) | (u_s >= 1 - 1e-9)
            if not (at_bound & ~fixed).any():
                break
            fixed = fixed | at_bound
        lb_msgs.append(f"start {int(j)}: NMSE {f_res:.4f} ({' → '.join(rounds)})")
        if f_res <= f_final:
            u_final, f_final, converged = u_s, f_res, ok
    msg = (f"{len(starts)} start(s), {budget_adam} batched Adam steps ({t_adam:.1f} s, {calls_adam} calls); "
           f"L-BFGS from the best {n_sel}: "
           + "; ".join(lb_msgs))
    return u_final, f_final, converged, msg


# ---------------------------------------------------------------------------------------------- public API
def fit_spectrum(spectrum: Spectrum, method: str = "nelder-mead", start=None, bounds=None,
                 fit_linewidth: bool = False, temperature: float | None = None,
                 lattice_parameter: float | None = None, seed: int = 0, max_evaluations: int | None = None,
                 n_starts: int = 6, adam_steps: int = 8, n_polish: int = 2, linewidth: float | None = None,
                 linewidth_bounds: tuple[float, float] = LINEWIDTH_BOUNDS,
                 settings: SimulationSettings | None = None, simulator: PowderSimulator | None = None,
                 uncertainty: bool = True, threads: int | None = 1, fit_background: bool = False,
                 background_bounds: tuple[float, float] | None = None) -> FitResult:
    """Fit the five force constants (and optionally γ) to one measured or simulated spectrum.

    Args:
        spectrum: one spectrum (χ'' or S, mean-normalised; others are normalised with a note).
        method: "nelder-mead" or "gradient".
        start: starting constants (N/m, 5 values): the reference constants when None, or an ML prediction.
        bounds: (5, 2) (low, high) per constant; default :func:`default_bounds` (widened to hold the start).
        fit_linewidth: fit γ (HWHM = γ·E) as a sixth, nuisance parameter.
        temperature: K; default the spectrum's own.
        lattice_parameter: Å; default the simulator's a(T).
        seed: seeds the extra starts of the gradient fit (Nelder–Mead is deterministic anyway).
        max_evaluations: simulator-call budget (default 300 per parameter for Nelder–Mead, 200 for gradient).
        n_starts, adam_steps, n_polish: multi-start batch size, batched Adam steps, and how many of the best
            starts L-BFGS-B polishes (gradient fit).
        linewidth: the fixed γ when not fitted (None = no intrinsic linewidth), else its start.
        settings / simulator: simulator settings, or a ready simulator on the spectrum's grid.
        uncertainty: compute the std (one extra batched simulator call).
        threads: torch intra-op threads during the fit (default 1: the per-call work is small and several
            threads are slower when the cores are shared; None = leave torch's setting).
        fit_background: model a residual background b(E) = b0 + b1·(E − Ē), flat in |Q| and linear in energy
            transfer (units: the span of the mean-normalised simulated spectrum; b1 per meV), as
            normalise(y_sim + b(E)). b1 is profiled out exactly at each evaluation (variable projection, no extra
            optimiser parameter); b0 cancels in the mean normalisation and is reported as 0.
        background_bounds: (low, high) for b1 (per meV); default ±2 spans over the energy range of the pixels.
    """
    with _torch_threads(threads):
        return _fit_spectrum(spectrum, method, start, bounds, fit_linewidth, temperature, lattice_parameter, seed,
                             max_evaluations, n_starts, adam_steps, n_polish, linewidth, linewidth_bounds, settings,
                             simulator, uncertainty, fit_background, background_bounds)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(old)


def _fit_spectrum(spectrum, method, start, bounds, fit_linewidth, temperature, lattice_parameter, seed,
                  max_evaluations, n_starts, adam_steps, n_polish, linewidth, linewidth_bounds, settings, simulator,
                  uncertainty, fit_background=False, background_bounds=None) -> FitResult:
    method = method.lower().replace("_", "-")
    if method in ("nm", "neldermead"):
        method = "nelder-mead"
    if method not in METHODS:
        raise ValueError(f"unknown fit method {method!r}: choose one of {METHODS}")
    notes: list[str] = []
    spectrum = _prepare_spectrum(spectrum, notes)
    t = spectrum.temperatures()[0] if temperature is None else float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError("the spectrum has no temperature: give temperature= (K) / --temperature")
    x0, b = _resolve_start_and_bounds(start, bounds, notes)
    if fit_linewidth:
        g0 = LINEWIDTH_START if linewidth is None else float(linewidth)
        lb = np.asarray(linewidth_bounds, dtype=float)
        g0 = float(np.clip(g0, lb[0], lb[1]))
        x0 = np.append(x0, g0)
        b = np.vstack([b, lb])
    if simulator is None:
        sim = get_simulator(spectrum.grid, spectrum.quantity, settings)
    else:
        sim = simulator
        if not sim.grid.same_as(spectrum.grid):
            raise ValueError("the given simulator is on another grid than the spectrum")
    prob = _Problem(sim, spectrum, t, lattice_parameter, b, fit_linewidth, None if fit_linewidth else linewidth,
                    fit_background, background_bounds)
    rng = np.random.default_rng(seed)
    u0 = prob.to_u(x0)
    t0 = time.perf_counter()
    if prob.nmse_np(u0) >= UNSTABLE_PENALTY:
        notes.append("the start is dynamically unstable")
    if method == "nelder-mead":
        u, f, conv, msg = _fit_nelder_mead(prob, u0, int(max_evaluations or 300 * prob.n_params), rng)
    else:
        u, f, conv, msg = _fit_gradient(prob, u0, int(max_evaluations or 200), n_starts, adam_steps, n_polish, rng)
    theta = prob.to_theta(u)
    if f >= UNSTABLE_PENALTY:
        raise ValueError("no dynamically stable force constants were found within the bounds: check the start "
                         "and the bounds")
    at_bound = np.where((u <= 1e-6) | (u >= 1 - 1e-6))[0]
    if len(at_bound):
        names = list(FORCE_CONSTANT_NAMES) + ["linewidth"]
        notes.append("at a bound: " + ", ".join(names[i] for i in at_bound))
    std = np.full(len(theta) + int(fit_background), np.nan)
    corr = None
    if uncertainty:
        std, corr, _, unote = _uncertainty(prob, theta)
        if unote:
            notes.append(unote)
    background = background_std = None
    with torch.no_grad():
        y = prob.simulate(torch.as_tensor(theta[None], dtype=sim.dtype))[0]
        if fit_background:
            ym = y[prob.mask][None]
            b1 = prob.best_background(ym)
            y = y.clone()
            y[prob.mask] = prob.model(ym, b1)[0]
            background = (0.0, float(b1[0]))
            background_std = (None, float(std[-1]))
            if abs(background[1]) >= (1 - 1e-4) * max(abs(prob.b_bounds[0]), abs(prob.b_bounds[1])):
                notes.append("background slope b1 at its bound")
        y = y.double().numpy()
    seconds = time.perf_counter() - t0
    yv, xv = y[spectrum.grid.mask], np.asarray(spectrum.intensity, float)[spectrum.grid.mask]
    nm = float(((xv - yv) ** 2).sum() / (xv ** 2).sum())
    if not conv:
        notes.append("did not converge within the evaluation budget: returning the best point found")
    message = msg + ("" if not notes else "; " + "; ".join(notes))
    fc = theta[:5].copy()
    lw = float(theta[5]) if fit_linewidth else (None if linewidth is None else float(linewidth))
    simulated = Spectrum(intensity=y, grid=spectrum.grid, temperature=t, quantity=spectrum.quantity,
                         normalization="mean", force_constants=fc, instrument=spectrum.instrument,
                         sample=spectrum.sample, metadata={"fit_method": method, "linewidth": lw,
                                                           "background": background})
    return FitResult(force_constants=fc, std=std[:5].copy(), linewidth=lw, nmse=nm, evaluations=prob.calls,
                     seconds=seconds, converged=conv, message=message, method=method, temperature=float(t),
                     lattice_parameter=lattice_parameter,
                     linewidth_std=float(std[5]) if fit_linewidth else None, spectra_simulated=prob.spectra,
                     start=x0[:5].copy(), correlation=corr, simulated=simulated, background=background,
                     background_std=background_std, background_energy_mean=prob.energy_mean)


# ---------------------------------------------------------------------------------------------- series
@dataclass
class SeriesResult:
    """Fits of a temperature series: per-spectrum results, a table and linear trends per constant.

    Attributes:
        results: one :class:`FitResult` per spectrum, in input order.
        temperature: (N,) K.
        force_constants, std: (N, 5) N/m.
        trends: per constant name, {"slope" (N/m per K), "intercept" (N/m), "slope_std"} of a weighted
            straight line through the fitted values (weights 1/std² where finite, else uniform).
    """

    results: list[FitResult]
    temperature: np.ndarray
    force_constants: np.ndarray
    std: np.ndarray
    trends: dict[str, dict[str, float]] = field(default_factory=dict)

    def table(self) -> str:
        """Plain-text table: T, each constant ± std, NMSE."""
        head = "T (K)   " + "".join(f"{n:>17s}" for n in FORCE_CONSTANT_NAMES) + "     NMSE"
        rows = [head]
        for t, f, s, r in zip(self.temperature, self.force_constants, self.std, self.results):
            rows.append(f"{t:7.1f} " + "".join(f"{a:9.3f} ±{b:6.3f}" for a, b in zip(f, s)) + f"  {r.nmse:7.4f}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature.tolist(), "force_constants": self.force_constants.tolist(),
                "std": np.where(np.isfinite(self.std), self.std, np.nan).tolist(), "trends": self.trends,
                "names": list(FORCE_CONSTANT_NAMES)}

    def plot(self, path: str | Path, overwrite: bool = False) -> Path:
        """Constants vs T with error bars and linear fits, written atomically as a PNG."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        p = check_output_path(path, overwrite)
        fig, axes = plt.subplots(2, 3, figsize=(12, 7), constrained_layout=True)
        order = np.argsort(self.temperature)
        tt = np.linspace(self.temperature.min(), self.temperature.max(), 50) if len(order) else np.array([])
        for i, name in enumerate(FORCE_CONSTANT_NAMES):
            ax = axes.flat[i]
            err = np.where(np.isfinite(self.std[order, i]), self.std[order, i], 0.0)
            ax.errorbar(self.temperature[order], self.force_constants[order, i], yerr=err, fmt="o", capsize=3)
            tr = self.trends.get(name)
            if tr and np.isfinite(tr["slope"]):
                ax.plot(tt, tr["intercept"] + tr["slope"] * tt, "-",
                        label=f"{tr['slope'] * 100:+.3f} N/m per 100 K")
                ax.legend(fontsize=8)
            ax.set_title(name)
            ax.set_xlabel("T (K)")
            ax.set_ylabel("N/m")
        ax = axes.flat[5]
        ax.plot(self.temperature[order], [self.results[j].nmse for j in order], "s-")
        ax.set_title("NMSE")
        ax.set_xlabel("T (K)")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        return p


def _linear_trend(t: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, float]:
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


def fit_series(spectra: Spectrum | Sequence[Spectrum], method: str = "nelder-mead", plot: str | Path | None = None,
               overwrite: bool = False, temperatures: Sequence[float] | None = None, **kwargs) -> SeriesResult:
    """Fit each spectrum of a set (or list) and collect constants vs T with linear trends.

    ``kwargs`` go to :func:`fit_spectrum`. With ``plot`` a PNG (error bars, linear fits) is written atomically.
    """
    items = list(spectra) if not isinstance(spectra, Spectrum) else list(spectra)
    if not items:
        raise ValueError("no spectra to fit")
    if temperatures is not None and len(temperatures) != len(items):
        raise ValueError(f"{len(temperatures)} temperatures for {len(items)} spectra")
    if plot is not None:
        check_output_path(plot, overwrite)
    results = []
    for i, s in enumerate(items):
        t = None if temperatures is None else temperatures[i]
        r = fit_spectrum(s, method=method, temperature=t, **kwargs)
        log.info("fit %d/%d: T = %.0f K, NMSE %.4f, %d evaluations, %.1f s", i + 1, len(items), r.temperature,
                 r.nmse, r.evaluations, r.seconds)
        results.append(r)
    temps = np.array([r.temperature for r in results])
    fcs = np.array([r.force_constants for r in results])
    stds = np.array([r.std for r in results])
    trends = {name: _linear_trend(temps, fcs[:, i], stds[:, i]) for i, name in enumerate(FORCE_CONSTANT_NAMES)}
    trends["M<w2> combination"] = _linear_trend(temps, msq_combination(fcs), np.full(len(temps), np.nan))
    out = SeriesResult(results=results, temperature=temps, force_constants=fcs, std=stds, trends=trends)
    if plot is not None:
        out.plot(plot, overwrite=overwrite)
    return out
