"""Scores of a trained pipeline: R² per named target, reconstruction MSE, RMSE (N/m)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from phonon_ml_core.learn.losses import encode_all
from phonon_ml_core.learn.networks import ForceConstantRegressor, SpectrumAutoencoder
from phonon_ml_core.learn.targets import Targets


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, shape (n_outputs,)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    return 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)



@torch.no_grad()
def evaluate(ae: SpectrumAutoencoder, reg: ForceConstantRegressor, x: torch.Tensor, y: np.ndarray,
             y_mean: np.ndarray, y_std: np.ndarray, tr: np.ndarray, va: np.ndarray, targets: Targets,
             temperature: np.ndarray | None = None) -> dict[str, Any]:
    """Reconstruction MSE, R² per named target and RMSE per constant (N/m), from mean codes, on the training
    and validation splits (``tr``, ``va``: indices into ``x`` and the labels ``y`` (N, n_outputs))."""
    out: dict[str, Any] = {}
    for name, idx in (("train", tr), ("validation", va)):
        if idx.size == 0:
            continue
        ae.eval()
        xs = x[idx]
        mse = sum(float(ae.loss(xs[i:i + 256])["mse"]) * xs[i:i + 256].shape[0]
                  for i in range(0, xs.shape[0], 256)) / xs.shape[0]
        mu, _ = encode_all(ae, xs)
        t = None if temperature is None else torch.as_tensor(np.asarray(temperature, float)[idx], dtype=mu.dtype)
        pred = reg(mu, t).numpy() * y_std + y_mean
        r2 = r2_score(y[idx], pred)
        rmse = np.sqrt(((pred - y[idx]) ** 2).mean(0))
        out[name] = {"n": int(idx.size), "reconstruction_mse": mse,
                     "r2": {k: (float(v) if np.isfinite(v) else None) for k, v in zip(targets.names, r2)},
                     "rmse_n_per_m": {k: float(v) for k, v in zip(targets.constants, rmse)}}
    return out
