"""scipy's bounded Nelder–Mead on the fit parameters scaled to the unit box."""
from __future__ import annotations

import math

import numpy as np
import scipy.optimize

from phonon_ml_core.fitting.problem import FitProblem


def fit_nelder_mead(prob: FitProblem, u0: np.ndarray, max_evaluations: int, rng: np.random.Generator | None = None
                    ) -> tuple[np.ndarray, float, bool, str]:
    """Bounded Nelder–Mead from ``u0`` on the unit box (initial simplex steps 0.05, adaptive above 4 parameters).

    Returns (best u, its NMSE, converged, message). ``rng`` is unused (the method is deterministic).
    """
    p = prob.n_params
    step = 0.05
    simplex = np.repeat(u0[None], p + 1, 0)
    for i in range(p):
        simplex[i + 1, i] += step if u0[i] + step <= 1 else -step
    best = {"f": math.inf, "u": u0.copy()}

    def fun(u):
        f = prob.nmse_np(np.clip(u, 0, 1))
        if f < best["f"]:
            best["f"], best["u"] = f, np.clip(u, 0, 1).copy()
        return f

    res = scipy.optimize.minimize(fun, u0, method="Nelder-Mead", bounds=[(0.0, 1.0)] * p,
                                  options={"maxfev": max_evaluations, "initial_simplex": simplex,
                                           "xatol": 1e-4, "fatol": 1e-6, "adaptive": p > 4})
    u = np.clip(res.x, 0, 1)
    f = float(res.fun)
    if best["f"] < f:
        u, f = best["u"], best["f"]
    return u, f, bool(res.success), str(res.message)
