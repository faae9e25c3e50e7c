"""Mean normalisation and NMSE on the valid pixels (conventions §3). numpy and torch alike.

torch is not imported here: a tensor can only exist once torch is imported, so numpy-only callers (the Mantid
dialogs, file readers) stay free of it.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def mean_normalize(x, mask):
    """x' = (x − mean(x)) / (max(x) − min(x)) over the valid pixels; NaN elsewhere.

    ``x`` has shape (..., n_E, n_Q) (numpy or torch); ``mask`` is bool (n_E, n_Q).
    """
    if _is_tensor(x):
        import torch

        m = torch.as_tensor(np.array(mask, dtype=bool), device=x.device)
        v = x[..., m]
        span = v.amax(-1, keepdim=True) - v.amin(-1, keepdim=True)
        v = (v - v.mean(-1, keepdim=True)) / span.clamp_min(torch.finfo(x.dtype).tiny)
        out = torch.full_like(x, float("nan"))
        out[..., m] = v
        return out
    x = np.asarray(x, dtype=float)
    m = np.asarray(mask, dtype=bool)
    v = x[..., m]
    if not np.all(np.isfinite(v)):
        raise ValueError("the spectrum has NaN or infinite values on valid pixels: "
                         "fill or mask them before normalising")
    span = v.max(-1, keepdims=True) - v.min(-1, keepdims=True)
    if np.any(span <= 0):
        raise ValueError("the spectrum is constant on the valid pixels, it cannot be mean-normalised")
    out = np.full(x.shape, np.nan)
    out[..., m] = (v - v.mean(-1, keepdims=True)) / span
    return out


def nmse(measured, simulated, mask):
    """NMSE = Σ (x − y)² / Σ x² over valid pixels, per spectrum (conventions §3).

    Both inputs must already be mean-normalised on the same mask.
    """
    if _is_tensor(measured) or _is_tensor(simulated):
        import torch

        x = torch.as_tensor(measured)
        y = torch.as_tensor(simulated, dtype=x.dtype, device=x.device)
        m = torch.as_tensor(np.array(mask, dtype=bool), device=x.device)
        xv, yv = x[..., m], y[..., m]
        return ((xv - yv) ** 2).sum(-1) / (xv ** 2).sum(-1)
    m = np.asarray(mask, dtype=bool)
    xv = np.asarray(measured, dtype=float)[..., m]
    yv = np.asarray(simulated, dtype=float)[..., m]
    return ((xv - yv) ** 2).sum(-1) / (xv ** 2).sum(-1)


def is_mean_normalized(x: np.ndarray, mask: np.ndarray, atol: float = 1e-4) -> bool:
    """True when every spectrum in ``x`` has zero mean and unit span on the valid pixels."""
    v = np.asarray(x, dtype=float)[..., np.asarray(mask, dtype=bool)]
    if not np.all(np.isfinite(v)):
        return False
    span = v.max(-1) - v.min(-1)
    return bool(np.all(np.abs(v.mean(-1)) < atol) and np.all(np.abs(span - 1) < atol))
