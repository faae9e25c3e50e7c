"""The objective of a joint fit of a temperature series: all spectra through one batched simulator call per grid.

Parameters θ = [C (n_coefficients × K, row-major, N/m), γ_1..γ_N] (γ only when the linewidth is fitted); the
constants at temperature T_i are X_i C (:class:`~phonon_ml_core.fitting.joint_model.SeriesModel`), clipped into
the material's fit bounds with a quadratic wall outside them. Each spectrum keeps its own residual-background slope,
profiled exactly (:mod:`phonon_ml_core.fitting.residual_background`), and the lattice parameter comes from the
material's a(T) inside the simulator. The objective is the mean NMSE over the spectra plus, for the free model,
λ × the roughness of the constants in T, plus the mean prior penalty of the constants (:mod:`.priors`) when given.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.joint_model import SeriesModel
from phonon_ml_core.fitting.priors import GaussianPrior
from phonon_ml_core.fitting.problem import UNSTABLE_PENALTY
from phonon_ml_core.fitting.residual_background import (
    SLOPE_LIMIT,
    best_slope,
    centred_energy,
    default_slope_bounds,
    with_slope,
)
from phonon_ml_core.simulator.powder import PowderSimulator

#: Objective per (distance outside the bounds in units of the bound width)², NMSE units.
WALL = 10.0
#: Most spectra simulated in one call: on the ARCS 50 meV grid the cost per spectrum is lowest for batches of about
#: 4–8 and doubles at 75 (the working set leaves the cache; benchmarks/joint.py --profile).
CHUNK = 6


@dataclass
class GridGroup:
    """Spectra of the series that share one grid (and so one simulator)."""

    sim: PowderSimulator
    fast: PowderSimulator     # float32 twin for the optimiser's finite-difference Jacobians (or ``sim`` itself)
    index: np.ndarray         # positions in the series
    mask: torch.Tensor        # (n_E, n_Q) bool
    x: torch.Tensor           # (N_g, n_pix) mean-normalised data on the valid pixels
    sum_x2: torch.Tensor      # (N_g,)
    e: torch.Tensor | None    # centred energy (n_pix,) when the background is fitted
    b_bounds: tuple[float, float] | None


class JointProblem:
    """Mean NMSE of a temperature series as a function of the series-model parameters (batched, differentiable)."""

    def __init__(self, spectra: Sequence[Spectrum], simulators: Sequence[PowderSimulator], temperatures: np.ndarray,
                 model: SeriesModel, bounds: np.ndarray, fit_linewidth: bool, linewidth_bounds: tuple[float, float],
                 fixed_linewidth: float | None, fit_background: bool, smoothness: float = 0.0,
                 prior: GaussianPrior | None = None, fast_simulators: Sequence[PowderSimulator] | None = None):
        self.model = model
        self.temperature = np.asarray(temperatures, float)
        self.n_spectra = len(spectra)
        self.bounds = np.asarray(bounds, float)
        self.n_constants = len(self.bounds)
        self.width = self.bounds[:, 1] - self.bounds[:, 0]
        self.fit_linewidth = bool(fit_linewidth)
        self.linewidth_bounds = (float(linewidth_bounds[0]), float(linewidth_bounds[1]))
        self.fixed_linewidth = fixed_linewidth
        self.fit_background = bool(fit_background)
        self.smoothness = float(smoothness)
        self.prior = prior  # checked against the material's names by fit_joint
        self.design = torch.as_tensor(model.design(), dtype=torch.float64)  # (N, d)
        self.n_coef = model.n_coefficients * self.n_constants
        self.n_params = self.n_coef + (self.n_spectra if self.fit_linewidth else 0)
        self.calls = 0
        self.spectra_simulated = 0
        self._fast = False
        twins = list(simulators) if fast_simulators is None else list(fast_simulators)
        if len(twins) != len(simulators):
            raise ValueError(f"{len(twins)} fast simulators for {len(simulators)} simulators")
        self.groups: list[GridGroup] = []
        for sim in dict.fromkeys(simulators):  # one group per distinct simulator, in order of first use
            idx = np.array([i for i, s in enumerate(simulators) if s is sim])
            mask_np = np.asarray(spectra[idx[0]].grid.mask, bool)
            x = torch.as_tensor(np.stack([np.asarray(spectra[i].intensity, float)[mask_np] for i in idx]))
            e = bb = None
            if self.fit_background:
                e, _ = centred_energy(spectra[idx[0]].grid)
                bb = default_slope_bounds(e, SLOPE_LIMIT)
            self.groups.append(GridGroup(sim, twins[idx[0]], idx, torch.as_tensor(mask_np.copy()), x, (x ** 2).sum(1),
                                         e, bb))

    # ------------------------------------------------------------------ parameters
    def start(self, reference: np.ndarray, linewidth: float) -> np.ndarray:
        """θ0: the reference constants at every temperature and γ = ``linewidth`` for every spectrum."""
        c = self.model.start(reference).ravel()
        return np.concatenate([c, np.full(self.n_spectra, linewidth)]) if self.fit_linewidth else c

    def scale(self) -> np.ndarray:
        """Natural step of each parameter: the bound width for constants' coefficients, 0.1 for γ."""
        s = np.tile(self.width, self.model.n_coefficients)
        return np.concatenate([s, np.full(self.n_spectra, 0.1)]) if self.fit_linewidth else s

    def unpack(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """fc (B, N, K) N/m and γ (B, N) (None without a fitted or fixed linewidth) from θ (B, P)."""
        c = theta[:, :self.n_coef].reshape(theta.shape[0], self.model.n_coefficients, self.n_constants)
        fc = torch.einsum("nd,bdk->bnk", self.design.to(theta.dtype), c)
        if self.fit_linewidth:
            lw = theta[:, self.n_coef:]
        elif self.fixed_linewidth is not None:
            lw = torch.full(fc.shape[:2], float(self.fixed_linewidth), dtype=theta.dtype)
        else:
            lw = None
        return fc, lw

    def wall(self, fc: torch.Tensor, lw: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(penalty (B,), fc clipped into the bounds, γ clipped into its bounds)."""
        lo = torch.as_tensor(self.bounds[:, 0], dtype=fc.dtype)
        hi = torch.as_tensor(self.bounds[:, 1], dtype=fc.dtype)
        fcc = torch.maximum(torch.minimum(fc, hi), lo)
        pen = WALL * (((fc - fcc) / torch.as_tensor(self.width, dtype=fc.dtype)) ** 2).sum((-1, -2))
        if lw is not None and self.fit_linewidth:
            a, b = self.linewidth_bounds
            lwc = lw.clamp(a, b)
            pen = pen + WALL * (((lw - lwc) / (b - a)) ** 2).sum(-1)
            lw = lwc
        if self.prior is not None:  # mean over the spectra of the prior penalty of their constants
            pen = pen + self.prior_rows(fc).pow(2).sum(-1) / self.n_spectra
        return pen, fcc, lw

    def prior_rows(self, fc: torch.Tensor) -> torch.Tensor:
        """Prior residual rows (B, N·K_active) of constants fc (B, N, K): Σ rows² = N × the mean prior penalty."""
        b = fc.shape[0]
        return self.prior.residual_rows(fc.reshape(-1, self.n_constants), 1.0).reshape(b, -1)

    # ------------------------------------------------------------------ simulation
    @contextlib.contextmanager
    def fast_simulation(self) -> Iterator[None]:
        """Within the block, :meth:`simulate` uses each group's fast (float32) twin: for the finite-difference
        Jacobians that only steer the optimiser (objective values and gradients stay in the simulators' float64)."""
        old, self._fast = self._fast, True
        try:
            yield
        finally:
            self._fast = old

    def simulate(self, group: GridGroup, fc: torch.Tensor, lw: torch.Tensor | None) -> torch.Tensor:
        """Valid pixels (B, N_g, n_pix) of the group's spectra for fc (B, N, K), γ (B, N); NaN rows if unstable.

        Returned in fc's dtype whichever simulator (float64, or its float32 twin in :meth:`fast_simulation`) ran."""
        b = fc.shape[0]
        sim = group.fast if self._fast else group.sim
        idx = torch.as_tensor(group.index)
        f = fc[:, idx].reshape(-1, self.n_constants).to(sim.dtype)
        t = torch.as_tensor(self.temperature[group.index], dtype=sim.dtype).repeat(b)
        g = None if lw is None else lw[:, idx].reshape(-1).to(sim.dtype)
        out = []
        for s in range(0, f.shape[0], CHUNK):
            y = sim(f[s:s + CHUNK], t[s:s + CHUNK], linewidth=None if g is None else g[s:s + CHUNK],
                    allow_unstable=True)
            out.append(y[:, group.mask].to(fc.dtype))
        self.calls += 1
        self.spectra_simulated += f.shape[0]
        return torch.cat(out).reshape(b, len(group.index), -1)

    def model_pixels(self, group: GridGroup, y: torch.Tensor, slope: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model on the valid pixels (B, N_g, n_pix) with the background slope (profiled when not given)."""
        if not self.fit_background:
            return y, None
        b, ng, npix = y.shape
        flat = y.reshape(b * ng, npix)
        stable = torch.isfinite(flat).all(-1)
        flat0 = torch.where(stable[:, None], flat, torch.zeros_like(flat))
        if slope is None:
            slope = best_slope(group.x.repeat(b, 1), flat0, group.e, group.b_bounds).reshape(b, ng)
        m = with_slope(flat0, slope.reshape(-1), group.e)
        m = torch.where(stable[:, None], m, torch.full_like(m, float("nan")))
        return m.reshape(b, ng, npix), slope

    def nmse(self, theta: torch.Tensor, slopes: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-spectrum NMSE (B, N) (unstable: :data:`UNSTABLE_PENALTY`) and the objective (B,) with walls/penalty."""
        fc, lw = self.unpack(theta)
        pen, fcc, lwc = self.wall(fc, lw)
        out = theta.new_zeros(theta.shape[0], self.n_spectra)
        for j, g in enumerate(self.groups):
            m, _ = self.model_pixels(g, self.simulate(g, fcc, lwc), None if slopes is None else slopes[j])
            bad = ~torch.isfinite(m).all(-1)
            r = torch.where(bad[..., None], torch.zeros_like(m), m - g.x)
            val = (r ** 2).sum(-1) / g.sum_x2
            out[:, torch.as_tensor(g.index)] = torch.where(bad, torch.full_like(val, UNSTABLE_PENALTY), val)
        obj = out.mean(1) + pen
        if self.smoothness > 0 and self.model.kind == "free":
            obj = obj + self.smoothness * self.model.roughness(fc, torch.as_tensor(self.width, dtype=fc.dtype))
        return out, obj

    def residual_vector(self, theta: torch.Tensor, slopes: list) -> torch.Tensor:
        """Residuals (B, n_total) of all spectra, each divided by sqrt(Σx²) (so SSR = Σ NMSE), at fixed slopes."""
        fc, lw = self.unpack(theta)
        _, fcc, lwc = self.wall(fc, lw)
        parts = []
        for j, g in enumerate(self.groups):
            m, _ = self.model_pixels(g, self.simulate(g, fcc, lwc), slopes[j])
            parts.append(((m - g.x) / g.sum_x2.sqrt()[:, None]).reshape(theta.shape[0], -1))
        return torch.cat(parts, 1)
