"""Gradient fit: autograd through the simulator, several starts optimised together, the best polished.

Projected Adam on one batched simulator call per step, then L-BFGS-B with exact gradients in coordinates
whitened by the Gauss–Newton curvature (an active set holds constants that end on a bound).
"""
from __future__ import annotations

import math
import time

import numpy as np
import scipy.optimize
import torch

from phonon_ml_core.fitting.problem import UNSTABLE_PENALTY, FitProblem

WALL = 10.0  # NMSE per (unit-box distance)² outside the bounds, gradient polish


class Adam:
    """Adam on one tensor, step for step the arithmetic of ``torch.optim.Adam`` (no weight decay, no amsgrad) on
    the CPU, without its first-use import of torch's compiler stack (about 1.4 s per process)."""

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, (self.beta1, self.beta2), self.eps = param, lr, betas, eps
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.steps = 0

    def zero_grad(self) -> None:
        self.param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grad = self.param.grad
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step = float(self.steps)
        step_size = self.lr / (1 - self.beta1 ** step)
        denom = (self.exp_avg_sq.sqrt() / (1 - self.beta2 ** step) ** 0.5).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-step_size)


def _whitening(prob: FitProblem, u: np.ndarray, free: np.ndarray | None = None) -> np.ndarray:
    """A (P, n_free) with Aᵀ H A ≈ 1 for the Gauss–Newton NMSE Hessian H of the free parameters at u.

    One-sided differences, one batched simulator call; rows of fixed parameters are zero.
    """
    p = prob.n_params
    free = np.ones(p, bool) if free is None else np.asarray(free, bool)
    h = 1e-3
    pts = np.repeat(u[None], p + 1, 0)
    for i in range(p):
        pts[1 + i, i] += h if u[i] + h <= 1 else -h
    with torch.no_grad():
        r, bad = prob.residuals(prob.to_theta(torch.as_tensor(pts, dtype=prob.sim.dtype)))
    r = r.double().numpy()
    if bad.any():
        return np.eye(p)[:, free] * 0.1
    jac = ((r[1:] - r[0]).T / (pts[1:] - u).sum(1))[:, free]
    hess = 2 * jac.T @ jac / prob.sum_x2
    lam, vec = np.linalg.eigh(hess)
    lam = np.maximum(lam, 1e-6 * lam.max() + 1e-12)
    out = np.zeros((p, int(free.sum())))
    out[free] = vec / np.sqrt(lam)
    return out


def _whitened_lbfgs(prob: FitProblem, u_s: np.ndarray, free: np.ndarray, max_calls: int):
    """L-BFGS with autograd gradients over the ``free`` parameters, whitened at ``u_s``; clip + quadratic wall."""
    dtype = prob.sim.dtype
    a_mat = _whitening(prob, u_s, free)
    cache: dict[bytes, tuple[float, np.ndarray]] = {}

    def fun_grad(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in cache:
            uu = u_s + a_mat @ z
            uc = np.clip(uu, 0.0, 1.0)
            wall = WALL * float(((uu - uc) ** 2).sum())
            t = torch.tensor(uc[None], dtype=dtype, requires_grad=True)
            val, bad = prob.nmse_u(t)
            if bool(bad[0]):
                cache[key] = (UNSTABLE_PENALTY + wall, a_mat.T @ (2 * WALL * (uu - uc)))
            else:
                val.sum().backward()
                g = t.grad[0].detach().double().numpy() * (uu == uc) + 2 * WALL * (uu - uc)
                cache[key] = (float(val.detach()[0]) + wall, a_mat.T @ g)
        return cache[key]

    res = scipy.optimize.minimize(fun_grad, np.zeros(a_mat.shape[1]), jac=True, method="L-BFGS-B",
                                  options={"maxfun": max(max_calls, 3), "ftol": 1e-7, "gtol": 1e-4, "maxcor": 20})
    u_res = np.clip(u_s + a_mat @ res.x, 0.0, 1.0)
    f_res = prob.nmse_np(u_res)
    return u_res, f_res, bool(res.success), f"{f_res:.4f} {res.message}"


def start_points(prob: FitProblem, u0: np.ndarray, n_starts: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The given start and ``n_starts − 1`` perturbed copies on the unit box.

    Constants whose bounds keep one sign: ×(1 + 0.25·N(0, 1)); constants whose bounds straddle zero (sign not
    settled, e.g. aluminium's 2YY in [−2, 2] N/m): uniform over the central 75 % of their range; γ × e^{0.5·N(0, 1)}.
    Free fits trade the first shell against the second, so the landscape has several basins.
    """
    k = prob.n_constants
    lo, hi = prob.lo[:k], prob.lo[:k] + prob.width[:k]
    straddle = (lo < 0) & (hi > 0)
    relative = np.where(~straddle)[0]
    theta0 = prob.to_theta(u0)
    starts = [u0]
    for _ in range(max(n_starts, 1) - 1):
        theta = theta0.copy()
        theta[relative] = theta0[relative] * (1 + 0.25 * rng.standard_normal(len(relative)))
        for i in np.where(straddle)[0]:
            centre, half = 0.5 * (lo[i] + hi[i]), 0.375 * (hi[i] - lo[i])
            theta[i] = rng.uniform(centre - half, centre + half)
        if prob.fit_linewidth:
            theta[k] = theta0[k] * math.exp(0.5 * rng.standard_normal())
        starts.append(np.clip(prob.to_u(theta), 0.0, 1.0))
    return starts


def fit_gradient(prob: FitProblem, u0: np.ndarray, max_evaluations: int, n_starts: int, adam_steps: int,
                 n_polish: int, rng: np.random.Generator) -> tuple[np.ndarray, float, bool, str]:
    """Multi-start projected Adam (one batched simulator call per step), then whitened L-BFGS-B polish.

    Returns (best u, its NMSE, converged, message).
    """
    p = prob.n_params
    dtype = prob.sim.dtype
    starts = start_points(prob, u0, n_starts, rng)
    u = torch.tensor(np.array(starts), dtype=dtype, requires_grad=True)
    opt = Adam(u, lr=0.02)
    best_f = np.full(len(starts), np.inf)
    best_u = np.array(starts)
    last_good = u.detach().clone()
    t_adam = time.perf_counter()
    budget_adam = max(0, min(adam_steps, max_evaluations // 4))
    for _ in range(budget_adam):
        opt.zero_grad()
        vals, bad = prob.nmse_u(u)
        vals.sum().backward()
        v = vals.detach().numpy()
        better = v < best_f
        best_f[better] = v[better]
        best_u[better] = u.detach().numpy()[better]
        with torch.no_grad():
            if bad.any():  # unstable: go back to the last stable point of that start, with no step this time
                u.grad[bad] = 0.0
                u[bad] = last_good[bad]
            last_good = torch.where(bad[:, None], last_good, u.detach())
        opt.step()
        with torch.no_grad():
            u.clamp_(0.0, 1.0)
    if budget_adam == 0:
        with torch.no_grad():
            v, _ = prob.nmse_u(u)
        best_f, best_u = v.numpy(), u.detach().numpy()
    order = np.argsort(best_f)
    t_adam = time.perf_counter() - t_adam
    calls_adam = prob.calls
    # --- L-BFGS polish of the best `n_polish` starts with exact (autograd) gradients, in coordinates whitened by
    #     the Gauss–Newton curvature at the start (the valley trading first against second shell is long and
    #     narrow in the raw parameters, where L-BFGS stalls); the box is kept by clipping plus a quadratic wall.
    u_final, f_final, converged, lb_msgs = best_u[order[0]], float(best_f[order[0]]), False, []
    n_sel = min(n_polish, len(order))
    for k, j in enumerate(order[:n_sel]):
        remaining = max((max_evaluations - prob.calls) // (n_sel - k), 5)
        u_s, fixed, f_res, ok, rounds = best_u[j], np.zeros(p, bool), math.inf, False, []
        calls0 = prob.calls
        for _round in range(3):  # active set: constants that end on a bound are held there and the rest re-whitened
            left = remaining - (prob.calls - calls0)
            if fixed.all() or left < 4:
                break
            u_new, f_new, ok_new, m = _whitened_lbfgs(prob, u_s, ~fixed, left - 2)
            rounds.append(m)
            if f_new <= f_res:
                u_s, f_res, ok = u_new, f_new, ok_new
            at_bound = (u_s <= 1e-9) | (u_s >= 1 - 1e-9)
            if not (at_bound & ~fixed).any():
                break
            fixed = fixed | at_bound
        lb_msgs.append(f"start {int(j)}: NMSE {f_res:.4f} ({' → '.join(rounds)})")
        if f_res <= f_final:
            u_final, f_final, converged = u_s, f_res, ok
    msg = (f"{len(starts)} start(s), {budget_adam} batched Adam steps ({t_adam:.1f} s, {calls_adam} calls); "
           f"L-BFGS from the best {n_sel}: "
           + "; ".join(lb_msgs))
    return u_final, f_final, converged, msg
