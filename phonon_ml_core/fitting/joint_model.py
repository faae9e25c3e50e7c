"""How the force constants of a joint fit depend on temperature: linear, quadratic, or free with a smoothness penalty.

Each constant is fc_k(T) = Σ_j X_j(T) C_jk with a design matrix X over the scaled temperature
τ = (T − T̄) / ΔT (T̄ the mean, ΔT half the range, so τ ∈ [−1, 1]): linear X = [1, τ], quadratic [1, τ, τ²],
free X = identity (one set of constants per temperature, tied together by a penalty on their second differences
in T, which leaves straight lines free).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from phonon_ml_core.fitting.defaults import SERIES_MODELS


@dataclass(frozen=True)
class SeriesModel:
    """The temperature dependence of the constants for the temperatures ``temperature`` (N,), K."""

    kind: str
    temperature: np.ndarray

    def __post_init__(self):
        if self.kind not in SERIES_MODELS:
            raise ValueError(f"unknown series model {self.kind!r}: choose one of {SERIES_MODELS}")
        t = np.asarray(self.temperature, float)
        need = {"linear": 2, "quadratic": 3, "free": 1}[self.kind]
        if len(np.unique(t)) < need:
            raise ValueError(f"the {self.kind} series model needs at least {need} distinct temperatures, got "
                             f"{sorted(set(t.tolist()))} K: use series_model='free' or add temperatures")

    @property
    def centre(self) -> float:
        """T̄ (K)."""
        return float(np.mean(self.temperature))

    @property
    def scale(self) -> float:
        """ΔT (K): half the temperature range (1 for a single temperature)."""
        return max(0.5 * float(np.ptp(self.temperature)), 1.0)

    @property
    def n_coefficients(self) -> int:
        """Rows of C per constant (2 linear, 3 quadratic, N free)."""
        return {"linear": 2, "quadratic": 3, "free": len(self.temperature)}[self.kind]

    def design(self, temperature: np.ndarray | None = None) -> np.ndarray:
        """X (M, n_coefficients) at ``temperature`` (default the fitted ones); free needs the fitted ones."""
        t = np.asarray(self.temperature if temperature is None else temperature, float).reshape(-1)
        if self.kind == "free":
            if temperature is not None and not np.array_equal(t, np.asarray(self.temperature, float)):
                return self._interpolation(t)
            return np.eye(len(t))
        tau = (t - self.centre) / self.scale
        return np.stack([tau ** j for j in range(self.n_coefficients)], 1)

    def _interpolation(self, t: np.ndarray) -> np.ndarray:
        """Linear interpolation (constant extrapolation) weights of the free model at new temperatures."""
        ts = np.asarray(self.temperature, float)
        order = np.argsort(ts)
        out = np.zeros((len(t), len(ts)))
        for i, ti in enumerate(t):
            eye = np.eye(len(ts))[order]
            out[i] = [np.interp(ti, ts[order], eye[:, j]) for j in range(len(ts))]
        return out

    def start(self, reference: np.ndarray) -> np.ndarray:
        """C (n_coefficients, K) that gives the reference constants (N/m) at every temperature."""
        ref = np.asarray(reference, float)
        c = np.zeros((self.n_coefficients, len(ref)))
        if self.kind == "free":
            c[:] = ref
        else:
            c[0] = ref
        return c

    def roughness(self, fc: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        """Σ of squared second differences in T of fc (…, N, K) / width (K,) per scaled temperature² (free model).

        Uses divided differences on the (sorted) temperature axis, so a straight line in T costs nothing.
        """
        order = np.argsort(self.temperature)
        tau = (np.asarray(self.temperature, float)[order] - self.centre) / self.scale
        f = fc[..., order, :] / width
        if len(order) < 3:
            return f.new_zeros(f.shape[:-2])
        d1 = (f[..., 1:, :] - f[..., :-1, :]) / torch.as_tensor(np.diff(tau), dtype=f.dtype)[:, None]
        mid = 0.5 * torch.as_tensor(tau[2:] - tau[:-2], dtype=f.dtype)[:, None]
        d2 = (d1[..., 1:, :] - d1[..., :-1, :]) / mid
        return (d2 ** 2).sum((-1, -2)) / len(order)
