"""Flux-conserving rebinning of 2-D (E, |Q|) intensity densities with error propagation.

Intensities are treated as densities (per meV per 1/Å): a value times its bin area is the integral
over the bin. Rebinning is a fractional-overlap average, axis by axis, done as two matrix products::

    N   = A_E @ (Y·v) @ A_Qᵀ        (integral of the covered part of each output bin)
    C   = A_E @ v     @ A_Qᵀ        (covered area of each output bin)
    Y'  = N / C                     (average density over the covered part)
    σ'² = A_E² @ (σ²·v) @ (A_Q²)ᵀ / C²

with ``A[j, i]`` the overlap length of input bin ``i`` with output bin ``j`` and ``v`` 1 on finite
input pixels, 0 on NaN ones (as Mantid's NormalisedPolygon divides by the fractional area). When an
output bin is fully covered, ``Σ Y'·area`` equals ``Σ Y·area`` of the input: integrals are conserved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The half-area rule (conventions §7): an output bin counts as covered when the data cover at least half of its
#: area, as with Mantid's fractional-area (NormalisedPolygon) rebinning.
HALF_AREA_COVERAGE: float = 0.5


def overlap_matrix(src_edges: np.ndarray, dst_edges: np.ndarray) -> np.ndarray:
    """Overlap lengths ``A[j, i]`` of input bin ``i`` with output bin ``j``, shape (n_dst, n_src).

    Both edge arrays must be strictly increasing (same unit, e.g. meV or 1/Å).
    """
    s = np.asarray(src_edges, dtype=float)
    d = np.asarray(dst_edges, dtype=float)
    for name, e in (("input", s), ("output", d)):
        if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
            raise ValueError(f"{name} bin edges must be a strictly increasing 1-D array of at least two values")
    lo = np.maximum(d[:-1, None], s[None, :-1])
    hi = np.minimum(d[1:, None], s[None, 1:])
    return np.clip(hi - lo, 0.0, None)


@dataclass
class Rebinned:
    """Result of :func:`rebin2d`.

    Attributes:
        intensity: rebinned density (..., n_E', n_Q'); NaN where nothing is covered or the coverage
            is below ``min_coverage``.
        errors: propagated one-sigma errors, same shape, or None.
        coverage: covered fraction of each output bin's area, in [0, 1], shape (..., n_E', n_Q').
    """

    intensity: np.ndarray
    errors: np.ndarray | None
    coverage: np.ndarray


def rebin2d(intensity: np.ndarray, energy_edges: np.ndarray, q_edges: np.ndarray,
            new_energy_edges: np.ndarray, new_q_edges: np.ndarray, errors: np.ndarray | None = None,
            min_coverage: float = 0.0) -> Rebinned:
    """Rebin a density ``intensity`` (..., n_E, n_Q) onto new edges, conserving integrals.

    Args:
        intensity: values per unit E per unit |Q|; NaN marks uncovered pixels.
        energy_edges, q_edges: input edges (meV, 1/Å), n_E + 1 and n_Q + 1 values.
        new_energy_edges, new_q_edges: output edges.
        errors: one-sigma errors of ``intensity`` or None; NaN errors on finite pixels count as 0.
        min_coverage: output bins whose covered area fraction is below this become NaN.
    """
    y = np.asarray(intensity, dtype=float)
    a_e = overlap_matrix(energy_edges, new_energy_edges)
    a_q = overlap_matrix(q_edges, new_q_edges)
    if y.shape[-2:] != (a_e.shape[1], a_q.shape[1]):
        raise ValueError(f"intensity shape {y.shape} does not match the edges: expected (..., "
                         f"{a_e.shape[1]}, {a_q.shape[1]}) = (n_E, n_Q)")
    valid = np.isfinite(y)
    yv = np.where(valid, y, 0.0)
    v = valid.astype(float)
    num = a_e @ yv @ a_q.T
    cov = a_e @ v @ a_q.T
    area = (np.diff(np.asarray(new_energy_edges, dtype=float))[:, None]
            * np.diff(np.asarray(new_q_edges, dtype=float))[None, :])
    frac = cov / area
    ok = frac >= max(min_coverage, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(ok, num / cov, np.nan)
        err = None
        if errors is not None:
            s = np.asarray(errors, dtype=float)
            if s.shape != y.shape:
                raise ValueError(f"errors shape {s.shape} differs from intensity shape {y.shape}")
            var = np.where(valid & np.isfinite(s), s * s, 0.0)
            err = np.where(ok, np.sqrt((a_e * a_e) @ var @ (a_q * a_q).T) / cov, np.nan)
    return Rebinned(intensity=out, errors=err, coverage=np.clip(frac, 0.0, 1.0))


def crop_indices(edges: np.ndarray, lo: float, hi: float) -> slice:
    """The slice of bins (of ``edges``) that overlap the open interval (lo, hi)."""
    e = np.asarray(edges, dtype=float)
    start = max(int(np.searchsorted(e, lo, side="right")) - 1, 0)
    stop = min(int(np.searchsorted(e, hi, side="left")), e.size - 1)
    return slice(start, max(stop, start))
