"""Which force constants the data determine: eigen-directions of the Fisher information of a fit.

From the covariance C of the constants (marginalised over the nuisance parameters: the constants' block of the
full covariance is the inverse of the Schur complement of the Fisher information), each constant is scaled by its
natural size s_k = max(|fc_k|, 10 % of the largest |fc|) (N/m), and the eigenvectors of the relative covariance
C / (s sᵀ) are the combinations the data pin (small eigenvalue) or leave free (large). A combination with relative
std below :data:`DETERMINED` is *determined*; above :data:`UNDETERMINED` it is *undetermined*; between, *weak*.
Per constant the flag comes from its marginal relative std.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Relative std below which a combination or a constant counts as determined by the data.
DETERMINED = 0.1
#: Relative std above which it counts as undetermined (the data say nothing useful about it).
UNDETERMINED = 0.5


def _flag(rel: float) -> str:
    if not np.isfinite(rel) or rel > UNDETERMINED:
        return "undetermined"
    return "determined" if rel <= DETERMINED else "weak"


def natural_scale(force_constants: np.ndarray) -> np.ndarray:
    """s_k = max(|fc_k|, 0.1 · max|fc|) in N/m: the size a relative std is measured against."""
    fc = np.abs(np.asarray(force_constants, float))
    return np.maximum(fc, 0.1 * max(float(fc.max(initial=0.0)), 1e-12))


def identifiability(force_constants: np.ndarray, covariance: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Identifiability summary of constants (K,) N/m with covariance (K, K) (N/m)².

    Returns {"constants": {name: {"relative_std", "flag"}}, "directions": [{"combination": {name: weight},
    "relative_std", "flag"}, ...] (best determined first; weights of the relative constants fc_k / s_k, unit
    norm, largest weight positive), "determined": the directions flagged determined, "scale": s (N/m),
    "thresholds": {...}}. A non-finite covariance marks everything undetermined.
    """
    fc = np.asarray(force_constants, float).reshape(-1)
    cov = np.asarray(covariance, float)
    k = len(fc)
    if cov.shape != (k, k) or len(names) != k:
        raise ValueError(f"identifiability needs {k} names and a ({k}, {k}) covariance, got {len(names)} names and "
                         f"{cov.shape}")
    s = natural_scale(fc)
    out: dict[str, Any] = {"scale": s.tolist(), "thresholds": {"determined": DETERMINED,
                                                               "undetermined": UNDETERMINED}}
    if not np.all(np.isfinite(cov)):
        out["constants"] = {n: {"relative_std": None, "flag": "undetermined"} for n in names}
        out["directions"], out["determined"] = [], []
        return out
    rel = cov / np.outer(s, s)
    rel = 0.5 * (rel + rel.T)
    marginal = np.sqrt(np.clip(np.diag(rel), 0, None))
    out["constants"] = {n: {"relative_std": float(m), "flag": _flag(float(m))} for n, m in zip(names, marginal)}
    lam, vec = np.linalg.eigh(rel)
    dirs = []
    for j in np.argsort(lam):
        v = vec[:, j]
        v = v * np.sign(v[np.argmax(np.abs(v))])
        r = float(np.sqrt(max(lam[j], 0.0)))
        dirs.append({"combination": {n: float(w) for n, w in zip(names, v) if abs(w) >= 0.05},
                     "relative_std": r, "flag": _flag(r)})
    out["directions"] = dirs
    out["determined"] = [d for d in dirs if d["flag"] == "determined"]
    return out


def marginal_covariance(fisher: np.ndarray, n_constants: int) -> np.ndarray:
    """The constants' covariance from a Fisher information over (constants, nuisance): the leading block of its
    inverse (the inverse of the Schur complement). A direction the data cannot see (zero eigenvalue) gets a huge
    variance, not the zero a pseudo-inverse would give: F is regularised by 10⁻¹² of its largest eigenvalue."""
    f = np.asarray(fisher, float)
    f = 0.5 * (f + f.T)
    lam, vec = np.linalg.eigh(f)
    floor = 1e-12 * max(float(np.abs(lam).max(initial=0.0)), 1e-300)
    inv = (vec / np.maximum(lam, floor)) @ vec.T
    return inv[:n_constants, :n_constants]
