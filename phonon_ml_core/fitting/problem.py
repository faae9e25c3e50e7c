"""The fit objective: NMSE (conventions §3) of the simulated spectrum against the input on the unit box.

Unstable trial constants (imaginary frequencies) get :data:`UNSTABLE_PENALTY`, never a NaN. With
``fit_background`` a residual background slope in energy is profiled out exactly at each evaluation
(:mod:`phonon_ml_core.fitting.residual_background`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.linewidth import LINEWIDTH_OFFSET, simulator_linewidth
from phonon_ml_core.fitting.priors import GaussianPrior
from phonon_ml_core.fitting.residual_background import (
    SLOPE_LIMIT,
    best_slope,
    centred_energy,
    default_slope_bounds,
    profile,
    with_slope,
)
from phonon_ml_core.simulator.powder import PowderSimulator

#: Objective value (NMSE units) given to dynamically unstable trial constants.
UNSTABLE_PENALTY = 1.0e3
#: Name of the intrinsic-linewidth parameter γ (HWHM = γ·E, dimensionless).
LINEWIDTH = "linewidth"
#: Default bound on |b1| (background slope, simulated-span units per meV) times the energy range of the valid pixels:
#: the background may change by up to two spans of the simulated spectrum across the energy range.
BACKGROUND_SLOPE_LIMIT = SLOPE_LIMIT


class FitProblem:
    """The objective on the unit box u ∈ [0, 1]^P ↔ physical parameters θ = lo + u (hi − lo).

    θ holds the material's K force constants (N/m), then the linewidth γ when it is fitted, then its constant part
    γ0 (meV, "linewidth_offset") with ``linewidth_offset`` (HWHM = γ0 + γ·E, :mod:`.linewidth`). A ``prior``
    (:mod:`.priors`) adds residual rows on the constants.
    """

    def __init__(self, sim: PowderSimulator, spectrum: Spectrum, temperature: float, lattice_parameter,
                 bounds: np.ndarray, fit_linewidth: bool, fixed_linewidth: float | None, fit_background: bool = False,
                 background_bounds: tuple[float, float] | None = None, names: Sequence[str] | None = None,
                 linewidth_offset: bool = False, prior: GaussianPrior | None = None):
        self.sim = sim
        self.names = tuple(sim.model.names if names is None else names)  # the force constants' names
        self.n_constants = len(self.names)
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
        self._box = {}   # dtype → (lo, width) tensors, made once
        # a(T) at the fixed temperature, evaluated once (the simulator would redo it at every call)
        self._a = lattice_parameter if lattice_parameter is not None else \
            sim.prepare(np.zeros((1, self.n_constants)), temperature).lattice_parameter
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
        # richer nuisance (issue 16): an affine linewidth and priors on the constants
        self.linewidth_offset = bool(linewidth_offset) and self.fit_linewidth
        self.prior = None if prior is None else prior.check_names(self.names)

    def to_theta(self, u):
        if isinstance(u, torch.Tensor):
            if u.dtype not in self._box:
                self._box[u.dtype] = tuple(torch.as_tensor(v, dtype=u.dtype) for v in (self.lo, self.width))
            lo, width = self._box[u.dtype]
            return lo + u * width
        return self.lo + np.asarray(u) * self.width

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the free parameters: the constants, then "linewidth" when fitted."""
        return self.names + ((LINEWIDTH,) if self.fit_linewidth else ()) + \
            ((LINEWIDTH_OFFSET,) if self.linewidth_offset else ())

    def to_u(self, theta: np.ndarray) -> np.ndarray:
        return (np.asarray(theta) - self.lo) / self.width

    def simulate(self, theta: torch.Tensor) -> torch.Tensor:
        """Simulated spectra (B, n_E, n_Q) for physical parameters (B, P)."""
        self.calls += 1
        self.spectra += theta.shape[0]
        fc = theta[:, :self.n_constants]
        if self.fit_linewidth:
            lw = simulator_linewidth(theta[:, self.n_constants],
                                     theta[:, self.n_constants + 1] if self.linewidth_offset else None)
        elif self.fixed_linewidth is not None:
            lw = torch.full((theta.shape[0],), float(self.fixed_linewidth), dtype=theta.dtype)
        else:
            lw = None
        return self.sim(fc, self.temperature, lattice_parameter=self._a, linewidth=lw, allow_unstable=True)

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
        if self.prior is not None:
            r = torch.cat([r, self.prior.residual_rows(theta[:, :self.n_constants], self.sum_x2)], 1)
        return r, bad

    def nmse_u(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """NMSE (B,) with the unstable penalty, from unit-box parameters (B, P)."""
        r, bad = self.residuals(self.to_theta(u))
        val = (r ** 2).sum(1) / self.sum_x2
        return torch.where(bad, torch.full_like(val, UNSTABLE_PENALTY), val), bad

    def nmse_np(self, u: np.ndarray) -> float:
        """NMSE with the unstable penalty at one unit-box point (no gradient)."""
        with torch.no_grad():
            v, _ = self.nmse_u(torch.as_tensor(np.asarray(u, dtype=float)[None], dtype=self.sim.dtype))
        return float(v[0])
