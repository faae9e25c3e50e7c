"""Bin-averaging kernels: Gaussian resolution lines averaged over output energy bins."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr


def binned_gaussian_kernel(fine: np.ndarray, sigma: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """K[f, e]: mean over output bin e of a unit Gaussian centred at fine[f] with width sigma[f].

    A density sampled on ``fine`` (spacing h) times h, multiplied by K, gives bin-averaged values.
    Zero σ means a delta line (pure bin averaging).
    """
    fine = np.asarray(fine, dtype=float)[:, None]
    s = np.maximum(np.asarray(sigma, dtype=float), 1e-9)[:, None]
    lo, hi = edges[None, :-1], edges[None, 1:]
    return (ndtr((hi - fine) / s) - ndtr((lo - fine) / s)) / (hi - lo)
