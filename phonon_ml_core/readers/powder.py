"""Detector × energy data → powder S(|Q|,E) by area-weighted (fractional-overlap) rebinning.

Each detector covers a scattering-angle range [2θ − w/2, 2θ + w/2]; with an energy bin [E₀, E₁] it
is a quadrilateral in (|Q|, E) whose corners follow |Q|² = kᵢ² + k_f² − 2 kᵢ k_f cos 2θ (its sides
are taken as straight lines, as in Mantid's SofQWNormalisedPolygon). The output keeps the input
energy bins, so each quadrilateral only meets output bins of its own energy row; its overlap area
with the |Q| strip [q_a, q_b] is A(q_b) − A(q_a), with A(x) the area of the part at |Q| ≤ x,
integrated in closed form. Each output bin gets the overlap-area-weighted mean of the pixels
overlapping it (a density average: integrals are conserved where the bin is covered).
"""
from __future__ import annotations

import numpy as np

from phonon_ml_core.physics.units import HBAR2_OVER_2MN_MEV_A2

_CHUNK = 1 << 20  # pixels per vectorised batch


def _ramp_mean(f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """∫₀¹ max(0, f(t)) dt for f linear from f0 to f1 (elementwise, without cancellation)."""
    both = (f0 >= 0) & (f1 >= 0)
    mixed = (f0 >= 0) != (f1 >= 0)
    pos = np.maximum(f0, f1)
    with np.errstate(invalid="ignore", divide="ignore"):
        part = pos * pos / (2.0 * np.abs(f1 - f0))
    return np.where(both, 0.5 * (f0 + f1), np.where(mixed, part, 0.0))


def _area_below(x: np.ndarray, a0, a1, b0, b1, de) -> np.ndarray:
    """Area of the trapezoid (left side a0→a1, right side b0→b1, height de) at |Q| ≤ x."""
    return de * (_ramp_mean(x - a0, x - a1) - _ramp_mean(x - b0, x - b1))


def q_of(two_theta_rad: np.ndarray, energy_mev: np.ndarray, ei_mev: float) -> np.ndarray:
    """|Q| (1/Å) for scattering angle 2θ (rad) and energy transfer E (meV) at incident energy Ei."""
    ki2 = ei_mev / HBAR2_OVER_2MN_MEV_A2
    kf2 = np.maximum(ei_mev - energy_mev, 0.0) / HBAR2_OVER_2MN_MEV_A2
    return np.sqrt(np.maximum(ki2 + kf2 - 2.0 * np.sqrt(ki2 * kf2) * np.cos(two_theta_rad), 0.0))


def default_q_edges(polar_deg: np.ndarray, width_deg: np.ndarray, energy_edges: np.ndarray, ei_mev: float,
                    dq: float = 0.05) -> np.ndarray:
    """|Q| edges from 0 to the largest |Q| reached, step ``dq`` (1/Å)."""
    tt = np.radians(np.clip(np.nanmax(polar_deg + 0.5 * width_deg), 0, 180))
    e = np.asarray(energy_edges, dtype=float)
    e = e[e < ei_mev]
    qmax = float(np.nanmax(q_of(tt, e, ei_mev))) if e.size else 1.0
    n = max(int(np.ceil(qmax / dq - 1e-9)), 1)
    return np.arange(n + 1) * dq


def powder_sqw(data: np.ndarray, error: np.ndarray | None, energy_edges: np.ndarray, polar_deg: np.ndarray,
               polar_width_deg: np.ndarray, ei_mev: float, q_edges: np.ndarray, min_coverage: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """Powder S(|Q|,E) (n_E, n_Q) and its errors from detector data (n_det, n_E).

    Args:
        data, error: intensity and one-sigma errors per detector and energy bin; non-finite or
            ≤ −1e10 values are masked.
        energy_edges: n_E + 1 energy-transfer edges (meV).
        polar_deg, polar_width_deg: detector scattering angle 2θ and its full width (degrees), (n_det,).
        ei_mev: incident energy (meV).
        q_edges: output |Q| edges (1/Å).
        min_coverage: output bins whose area the pixels cover less than this fraction of are NaN
            (0: any overlap; :data:`~phonon_ml_core.data.rebin.HALF_AREA_COVERAGE` for the half-area rule).

    Output bins no pixel overlaps are NaN (as Mantid's NormalisedPolygon, where the fractional area
    is zero).
    """
    y = np.asarray(data, dtype=float)
    n_e = y.shape[1]
    ee = np.asarray(energy_edges, dtype=float)
    qe = np.asarray(q_edges, dtype=float)
    n_q = qe.size - 1
    s = None if error is None else np.asarray(error, dtype=float)
    half = 0.5 * np.abs(np.asarray(polar_width_deg, dtype=float))
    pol = np.asarray(polar_deg, dtype=float)
    lo = np.radians(np.clip(pol - half, 0.0, 180.0))
    hi = np.radians(np.clip(pol + half, 0.0, 180.0))
    e0, e1 = ee[:-1], ee[1:]
    good = np.isfinite(y) & (y > -1e10) & (hi > lo)[:, None] & (np.maximum(e0, e1) < ei_mev)[None, :]
    if s is not None:
        good &= np.isfinite(s)
    det, k = np.nonzero(good)
    num = np.zeros(n_e * n_q)
    den = np.zeros(n_e * n_q)
    var = np.zeros(n_e * n_q) if s is not None else None
    for start in range(0, det.size, _CHUNK):
        d, kk = det[start:start + _CHUNK], k[start:start + _CHUNK]
        a0, a1 = q_of(lo[d], e0[kk], ei_mev), q_of(lo[d], e1[kk], ei_mev)
        b0, b1 = q_of(hi[d], e0[kk], ei_mev), q_of(hi[d], e1[kk], ei_mev)
        de = np.abs(e1[kk] - e0[kk])
        j0 = np.clip(np.searchsorted(qe, np.minimum(a0, a1), side="right") - 1, 0, n_q - 1)
        j1 = np.clip(np.searchsorted(qe, np.maximum(b0, b1), side="left"), 1, n_q)
        span = int(np.max(j1 - j0)) if d.size else 0
        cols = j0[:, None] + np.arange(span + 1)[None, :]
        x = qe[np.minimum(cols, n_q)]
        cum = _area_below(x, a0[:, None], a1[:, None], b0[:, None], b1[:, None], de[:, None])
        w = np.diff(cum, axis=1)                      # overlap areas with bins j0 .. j0+span-1
        area = de * 0.5 * ((b0 - a0) + (b1 - a1))
        ok = (cols[:, :-1] < n_q) & (w > 1e-9 * area[:, None])
        idx = (kk[:, None] * n_q + cols[:, :-1])[ok]
        wv = w[ok]
        yv = np.broadcast_to(y[d, kk][:, None], w.shape)[ok]
        num += np.bincount(idx, weights=wv * yv, minlength=n_e * n_q)
        den += np.bincount(idx, weights=wv, minlength=n_e * n_q)
        if var is not None:
            sv = np.broadcast_to(s[d, kk][:, None], w.shape)[ok]
            var += np.bincount(idx, weights=(wv * sv) ** 2, minlength=n_e * n_q)
    num, den = num.reshape(n_e, n_q), den.reshape(n_e, n_q)
    bin_area = np.abs(np.diff(ee))[:, None] * np.diff(qe)[None, :]
    covered = (den > 0) & (den >= min_coverage * bin_area * (1 - 1e-9))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(covered, num / den, np.nan)
        err = None if var is None else np.where(covered, np.sqrt(var.reshape(n_e, n_q)) / den, np.nan)
    return out, err

