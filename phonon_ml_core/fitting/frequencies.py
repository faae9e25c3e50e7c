"""Phonon frequencies of fitted or predicted constants, with uncertainties: the numbers compared with the literature.

One place for fit and predict: the zone-boundary frequencies of RESULT.json (conventions §6; fcc X and L, bcc H, N
and P, sc X, M and R; each point the three branch frequencies in ascending order, THz, negative = imaginary),
dispersion curves along a standard path for each lattice, and the propagation of the constants' covariance
through them (Jacobian by central differences: σ_f² = diag(J C Jᵀ)). The point coordinates are those of
:data:`phonon_ml_core.specs.derive_builtin.ZB_POINTS` (units of 2π/a). BvK frequencies at fixed fractional q do
not depend on the lattice parameter, only on the constants and the mass.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from phonon_ml_core.physics.units import MEV_PER_THZ
from phonon_ml_core.physics.symmetry import DISPERSION_PATHS
from phonon_ml_core.specs import Material
from phonon_ml_core.specs.derive_builtin import ZB_POINTS

#: Zone-boundary points reported in RESULT.json, per lattice (conventions §6).
RESULT_POINTS = {"fcc": ("X", "L"), "bcc": ("H", "N", "P"), "sc": ("X", "M", "R")}
GAMMA = (0.0, 0.0, 0.0)


def special_points(lattice: str) -> dict[str, tuple[float, float, float]]:
    """Γ and the zone-boundary points of ``lattice`` in Cartesian units of 2π/a."""
    if lattice not in ZB_POINTS:
        raise ValueError(f"unknown lattice {lattice!r}: choose one of {sorted(ZB_POINTS)}")
    return {"Γ": GAMMA, **ZB_POINTS[lattice]}


def frequencies_at(material: Material, force_constants, q_frac: np.ndarray) -> np.ndarray:
    """Branch frequencies (THz, ascending; negative = imaginary), (..., 3), at ``q_frac`` (..., 3) in units of 2π/a."""
    model = material.bvk_model(force_constants)
    q = np.asarray(q_frac, dtype=float) * (2 * np.pi / model.lattice_parameter)
    return model.frequencies_thz(q)


def propagate(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """One-sigma uncertainty of ``fn(x)`` for inputs with ``covariance`` (linear propagation, central differences).

    Returns an array shaped like ``fn(x)``; NaN where the covariance is not finite.
    """
    x = np.asarray(x, dtype=float)
    cov = np.asarray(covariance, dtype=float)
    y0 = np.asarray(fn(x), dtype=float)
    if cov.shape != (x.size, x.size) or not np.all(np.isfinite(cov)):
        return np.full(y0.shape, np.nan)
    jac = np.empty(y0.shape + (x.size,))
    for k in range(x.size):
        h = 1e-4 * max(abs(x[k]), float(np.sqrt(max(cov[k, k], 0.0))), 1e-3)
        up, dn = x.copy(), x.copy()
        up[k] += h
        dn[k] -= h
        jac[..., k] = (np.asarray(fn(up)) - np.asarray(fn(dn))) / (2 * h)
    var = np.einsum("...i,ij,...j->...", jac, cov, jac)
    return np.sqrt(np.clip(var, 0.0, None))


def covariance_from(std=None, covariance=None, n: int | None = None) -> np.ndarray | None:
    """A covariance matrix (N/m)² from a full ``covariance`` or, failing that, independent ``std`` values."""
    if covariance is not None:
        return np.asarray(covariance, dtype=float)
    if std is None:
        return None
    s = np.array([np.nan if v is None else v for v in np.ravel(std)], dtype=float)
    if n is not None and s.size != n:
        raise ValueError(f"{s.size} standard deviations for {n} force constants")
    return np.diag(s ** 2)


def zone_boundary_frequencies(material: Material, force_constants, std=None, covariance=None
                              ) -> tuple[dict[str, list[float]], dict[str, list[float | None]] | None]:
    """Frequencies (THz) at the RESULT.json zone-boundary points and their one-sigma uncertainties.

    ``std`` (K,) or ``covariance`` (K, K) of the constants (N/m); without either the second value is None.
    """
    fc = material.check_force_constants(force_constants).reshape(-1)
    labels = RESULT_POINTS[material.lattice]
    pts = special_points(material.lattice)
    q = np.array([pts[p] for p in labels])
    freq = frequencies_at(material, fc, q)
    out = {p: [float(v) for v in row] for p, row in zip(labels, freq)}
    cov = covariance_from(std, covariance, material.n_constants)
    if cov is None:
        return out, None
    sig = propagate(lambda x: frequencies_at(material, x, q), fc, cov)
    return out, {p: [float(v) if np.isfinite(v) else None for v in row] for p, row in zip(labels, sig)}


def frequency_fields(material: Material, force_constants, std=None, covariance=None) -> dict:
    """The RESULT.json frequency entries: ``frequency_points``, ``frequencies_thz``, ``frequencies_std_thz``."""
    freq, sig = zone_boundary_frequencies(material, force_constants, std, covariance)
    return {"frequency_points": list(freq), "frequencies_thz": freq, "frequencies_std_thz": sig}


def dispersion_path(lattice: str, lattice_parameter: float, points_per_segment: int = 60
                    ) -> tuple[np.ndarray, np.ndarray, list[tuple[float, str]]]:
    """q along the lattice's standard path: (q in units of 2π/a (n, 3), distance 1/Å (n,), ticks (distance, label))."""
    pts = special_points(lattice)
    path = DISPERSION_PATHS[lattice]
    scale = 2 * np.pi / lattice_parameter
    qs, dist, ticks, total = [], [], [(0.0, path[0])], 0.0
    t = np.linspace(0.0, 1.0, points_per_segment)
    for p0, p1 in itertools.pairwise(path):
        a, b = np.array(pts[p0]), np.array(pts[p1])
        qs.append(a + t[:, None] * (b - a))
        length = float(np.linalg.norm(b - a)) * scale
        dist.append(total + t * length)
        total += length
        ticks.append((total, p1))
    return np.concatenate(qs), np.concatenate(dist), ticks


def dispersion(material: Material, force_constants, std=None, covariance=None, lattice_parameter: float | None = None,
               points_per_segment: int = 60) -> dict:
    """Dispersion along the material's standard path.

    Returns {"distance" (n,) 1/Å, "energy_mev" (n, 3), "frequency_thz" (n, 3), "std_thz" (n, 3) or None,
    "ticks" [(distance, label)]}. ``lattice_parameter`` (Å) only sets the distance axis (default a at the
    material's reference temperature).
    """
    fc = material.check_force_constants(force_constants).reshape(-1)
    a = material.bvk_model(fc, lattice_parameter=lattice_parameter).lattice_parameter
    q, dist, ticks = dispersion_path(material.lattice, a, points_per_segment)
    freq = frequencies_at(material, fc, q)
    cov = covariance_from(std, covariance, material.n_constants)
    sig = None if cov is None else propagate(lambda x: frequencies_at(material, x, q), fc, cov)
    return {"distance": dist, "energy_mev": freq * MEV_PER_THZ, "frequency_thz": freq, "std_thz": sig,
            "ticks": ticks}
