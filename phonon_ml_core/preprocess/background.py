"""Energy-dependent background estimators for powder S(|Q|,E) or χ''(|Q|,E) maps.

Each estimator takes ``x`` (..., n_E, n_Q) and a bool ``valid`` mask (n_E, n_Q) or (..., n_E, n_Q)
and returns the background b(E) with shape (..., n_E), in the unit of ``x``; subtract it with
:func:`subtract_background`. Rows with no valid pixel get NaN from the per-energy estimators.

Estimators (see docs/preprocess.md):

* ``"minimum"`` (default) — per energy, the minimum (0th percentile) of the valid |Q| pixels;
* ``"percentile"`` — per energy, a low percentile (default 5 %) of the valid |Q| pixels;
* ``"low_region"`` — per energy, a constant fitted (least squares = mean) to the low-intensity |Q|
  region: the valid pixels at or below the given quantile (default the lowest 20 %).
* ``"polynomial"`` — a smooth polynomial in E (default degree 2) fitted, weighted by the
  number of valid pixels per row, to the per-energy low percentiles (default 10 %).
* ``"none"`` — zero.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import numpy as np

DEFAULT_BACKGROUND = "minimum"


def _rows(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    v = np.broadcast_to(np.asarray(valid, dtype=bool), x.shape)
    return np.where(v & np.isfinite(x), x, np.nan)


def percentile_background(x: np.ndarray, valid: np.ndarray, energy: np.ndarray | None = None,
                          percentile: float = 5.0) -> np.ndarray:
    """Per-energy ``percentile`` (0–100) of the valid |Q| pixels; shape (..., n_E)."""
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be within 0–100, got {percentile}")
    r = _rows(x, valid)
    with np.errstate(invalid="ignore"), _quiet():
        return np.nanpercentile(r, percentile, axis=-1)


def minimum_background(x: np.ndarray, valid: np.ndarray, energy: np.ndarray | None = None) -> np.ndarray:
    """Per-energy minimum over the valid |Q| pixels; shape (..., n_E)."""
    return percentile_background(x, valid, energy, percentile=0.0)


def low_region_background(x: np.ndarray, valid: np.ndarray, energy: np.ndarray | None = None,
                          fraction: float = 0.2) -> np.ndarray:
    """Per-energy constant fitted to the lowest ``fraction`` of the valid |Q| pixels (their mean)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    r = _rows(x, valid)
    with np.errstate(invalid="ignore"), _quiet():
        thr = np.nanquantile(r, fraction, axis=-1, keepdims=True)
        low = np.where(r <= thr, r, np.nan)
        return np.nanmean(low, axis=-1)


def polynomial_background(x: np.ndarray, valid: np.ndarray, energy: np.ndarray | None = None,
                          degree: int = 2, percentile: float = 10.0) -> np.ndarray:
    """Polynomial of ``degree`` in E fitted to per-energy low percentiles; shape (..., n_E).

    Each row is weighted by the square root of its number of valid pixels; rows without valid
    pixels are ignored in the fit but still get a (extrapolated) value.
    """
    r = _rows(x, valid)
    n_e = r.shape[-2]
    e = np.arange(n_e, dtype=float) if energy is None else np.asarray(energy, dtype=float)
    if e.shape != (n_e,):
        raise ValueError(f"energy has shape {e.shape}, expected ({n_e},)")
    q = percentile_background(r, np.isfinite(r), percentile=percentile)
    counts = np.isfinite(r).sum(-1)
    span = (e.max() - e.min()) or 1.0
    t = 2.0 * (e - e.min()) / span - 1.0
    flat_q = q.reshape(-1, n_e)
    flat_n = counts.reshape(-1, n_e)
    out = np.empty_like(flat_q)
    for i in range(flat_q.shape[0]):
        ok = np.isfinite(flat_q[i]) & (flat_n[i] > 0)
        if ok.sum() == 0:
            out[i] = np.nan
            continue
        deg = min(int(degree), int(ok.sum()) - 1)
        coef = np.polynomial.polynomial.polyfit(t[ok], flat_q[i, ok], deg, w=np.sqrt(flat_n[i, ok]))
        out[i] = np.polynomial.polynomial.polyval(t, coef)
    return out.reshape(q.shape)


def no_background(x: np.ndarray, valid: np.ndarray, energy: np.ndarray | None = None) -> np.ndarray:
    """Zero background; shape (..., n_E)."""
    return np.zeros(np.asarray(x).shape[:-1])


ESTIMATORS: dict[str, Callable[..., np.ndarray]] = {
    "polynomial": polynomial_background,
    "percentile": percentile_background,
    "minimum": minimum_background,
    "low_region": low_region_background,
    "none": no_background,
}


def estimate_background(x: np.ndarray, valid: np.ndarray, energy: np.ndarray | None = None,
                        method: str = DEFAULT_BACKGROUND, **options: float) -> np.ndarray:
    """b(E) by the named estimator (one of :data:`ESTIMATORS`); shape (..., n_E)."""
    try:
        fn = ESTIMATORS[method]
    except KeyError:
        raise ValueError(f"unknown background estimator {method!r}: choose one of {sorted(ESTIMATORS)}") from None
    return fn(x, valid, energy, **options)


def subtract_background(x: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``x − b(E)`` with b broadcast along |Q|; rows whose b is NaN are left unchanged."""
    b = np.nan_to_num(np.asarray(background, dtype=float), nan=0.0)
    return np.asarray(x, dtype=float) - b[..., None]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's "All-NaN slice" / "Mean of empty slice" warnings inside a block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def smooth_background_basis(mask: np.ndarray, degree: int = 3) -> np.ndarray:
    """Orthonormal basis (n_valid, K) of the polynomials of total degree ≤ ``degree`` in (E, |Q|) on the
    valid pixels of ``mask`` (n_E, n_Q), K = (degree + 1)(degree + 2)/2.

    The coordinates are the row and column indices scaled to [−1/2, 1/2]; on a uniform grid these span the
    same polynomials as energy transfer and |Q| themselves. Removing this subspace from a spectrum
    (:meth:`phonon_ml_core.learn.networks.SpectrumAutoencoder.model_space`) makes it blind to any smooth additive
    background of that degree
    (multiple scattering, sample environment, a residual slope): the input representation of the models
    (docs/training.md).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError("the mask must be a 2-D boolean array with at least one valid pixel")
    degree = int(degree)
    if degree < 0:
        raise ValueError(f"the background degree must be ≥ 0, got {degree}")
    n_e, n_q = mask.shape
    e, q = np.meshgrid(np.linspace(-0.5, 0.5, n_e), np.linspace(-0.5, 0.5, n_q), indexing="ij")
    e, q = e[mask], q[mask]
    cols = [e ** i * q ** (d - i) for d in range(degree + 1) for i in range(d + 1)]
    a = np.stack(cols, axis=1)
    if np.linalg.matrix_rank(a) < a.shape[1]:
        raise ValueError(f"the mask has too few valid pixels for a degree-{degree} background: lower the degree")
    basis, _ = np.linalg.qr(a)
    return basis

