"""Jacobian and covariance of a joint fit: Gauss–Newton at the optimum, background slopes explicit, inflated for
model error.

Spectrum i depends only on its own constants fc_i = X_i C, its γ_i and its slope b1_i, so the Jacobian is built
from the per-spectrum derivatives ∂r_i/∂(fc_i, γ_i, b1_i) (every spectrum perturbed in the same coordinate at once:
2(K + 1) + 1 sets of N spectra with a fitted γ in one batched call, central, K + 2 one-sided; the slope steps reuse
the unperturbed spectra, since the slope acts after the simulator) and the chain rule ∂fc_i/∂C = X_i ⊗ 1.
Residuals of each spectrum are divided by sqrt(Σx²) so that SSR = Σ NMSE_i. The free model's smoothness penalty
enters as a prior curvature N·λ·½∇²R; the statistical cov = σ² (JᵀJ + N λ ½∇²R)⁻¹ with σ² = SSR / (n − P); the
reported one is calibrated for model error by :func:`phonon_ml_core.fitting.calibration.calibrated_covariance`
(lack of fit from each spectrum's residual field, each spectrum's span-normalisation error), as for a single fit.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from phonon_ml_core.fitting.calibration import calibrated_covariance, model_error_inflation
from phonon_ml_core.fitting.joint_problem import JointProblem
from phonon_ml_core.fitting.uncertainty import covariance_from_curvature


def roughness_curvature(prob: JointProblem) -> np.ndarray:
    """½ ∇²R (P, P) of the free model's roughness (quadratic in θ, so exact); zeros for other models."""
    if prob.model.kind != "free" or prob.smoothness <= 0:
        return np.zeros((prob.n_params, prob.n_params))

    def rough(th):
        fc, _ = prob.unpack(th[None])
        return prob.model.roughness(fc, torch.as_tensor(prob.width))[0]
    return 0.5 * torch.autograd.functional.hessian(rough, torch.zeros(prob.n_params, dtype=torch.float64)).numpy()


def jacobian(prob: JointProblem, theta: np.ndarray, slopes: list, central: bool = True
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """(J (n_total, P + N_b), r0 (n_total,), N_b): weighted residuals and their derivatives in θ and, with a fitted
    background, in the N slopes b1_i (last columns). Non-finite entries where a neighbour is unstable."""
    k, n = prob.n_constants, prob.n_spectra
    fc_raw, lw_raw = prob.unpack(torch.as_tensor(theta[None]))
    _, fc, lw = prob.wall(fc_raw, lw_raw)  # the simulator sees the clipped values: no derivative outside the bounds
    inside = (fc == fc_raw)[0].numpy()
    lw_inside = None if lw is None else (lw == lw_raw)[0].numpy()
    fc, lw = fc[0], (None if lw is None else lw[0])
    local = [("fc", j, 1e-3 * prob.width[j]) for j in range(k)]
    if prob.fit_linewidth:
        local.append(("lw", 0, 1e-3 * (prob.linewidth_bounds[1] - prob.linewidth_bounds[0])))
    if prob.fit_background:
        local.append(("b", 0, None))
    signs = (1, -1) if central else (1,)
    fcs, lws = [fc], [lw]
    rows_sim = [0]  # the simulated set behind each row of the batch: a slope step reuses the unperturbed one (0)
    sl = [[s[0]] for s in slopes]
    for kind, j, h in local:
        for sg in signs:
            if kind == "b":
                rows_sim.append(0)
            else:
                f2, l2 = fc.clone(), None if lw is None else lw.clone()
                if kind == "fc":
                    f2[:, j] += sg * h
                else:
                    l2 = l2 + sg * h
                rows_sim.append(len(fcs))
                fcs.append(f2)
                lws.append(l2)
            for gi, g in enumerate(prob.groups):
                hb = 1e-3 * (g.b_bounds[1] - g.b_bounds[0]) if kind == "b" else 0.0
                sl[gi].append(slopes[gi][0] + sg * hb)
    fcb = torch.stack(fcs)
    lwb = None if lw is None else torch.stack(lws)
    pick = torch.as_tensor(rows_sim)
    with torch.no_grad():
        parts = []
        for gi, g in enumerate(prob.groups):
            m, _ = prob.model_pixels(g, prob.simulate(g, fcb, lwb)[pick], torch.stack(sl[gi]))
            parts.append((m - g.x) / g.sum_x2.sqrt()[:, None])  # (B, N_g, n_pix)
    # per-spectrum local derivatives d[i] (n_i, L)
    steps = [h for _, _, h in local]
    n_local = len(local)
    rows, r0 = [], []
    for gi, g in enumerate(prob.groups):
        res = parts[gi].numpy()
        hb = 1e-3 * (g.b_bounds[1] - g.b_bounds[0]) if prob.fit_background else None
        for a, i in enumerate(g.index):
            cols = []
            for li in range(n_local):
                h = hb if steps[li] is None else steps[li]
                up = res[1 + len(signs) * li, a]
                dn = res[2 + len(signs) * li, a] if central else res[0, a]
                cols.append((up - dn) / ((2 if central else 1) * h))
            rows.append((i, np.stack(cols, 1)))
            r0.append((i, res[0, a]))
    order = {i: pos for pos, (i, _) in enumerate(rows)}
    sizes = [len(r0[order[i]][1]) for i in range(n)]
    offs = np.concatenate([[0], np.cumsum(sizes)])
    n_b = n if prob.fit_background else 0
    jac = np.zeros((offs[-1], prob.n_params + n_b))
    resid = np.zeros(offs[-1])
    x = prob.model.design()
    for i in range(n):
        d = rows[order[i]][1]
        sl_i = slice(offs[i], offs[i + 1])
        resid[sl_i] = r0[order[i]][1]
        jac[sl_i, :prob.n_coef] = np.kron(x[i], d[:, :k] * inside[i])
        c = k
        if prob.fit_linewidth:
            jac[sl_i, prob.n_coef + i] = d[:, c] * lw_inside[i]
            c += 1
        if prob.fit_background:
            jac[sl_i, prob.n_params + i] = d[:, c]
    return jac, resid, n_b


def joint_covariance(prob: JointProblem, theta: np.ndarray, slopes: list) -> dict[str, Any]:
    """{"covariance" (P', P') inflated, "covariance_statistical", "sigma2", "inflation" (dict), "note",
    "residual_maps" [(n_E, n_Q) per spectrum], "n_background"} with P' = P + (N when the background is fitted)."""
    jac, r0, n_b = jacobian(prob, theta, slopes)
    ptot = prob.n_params + n_b
    maps = residual_maps(prob, r0)
    if not (np.isfinite(jac).all() and np.isfinite(r0).all()):
        nan = np.full((ptot, ptot), np.nan)
        return {"covariance": nan, "covariance_statistical": nan, "sigma2": float("nan"), "inflation": None,
                "note": "uncertainty unavailable (unstable neighbourhood)", "residual_maps": maps, "n_background": n_b}
    sigma2 = float((r0 ** 2).sum()) / max(r0.size - ptot, 1)
    curv = jac.T @ jac
    curv[:prob.n_params, :prob.n_params] += prob.n_spectra * prob.smoothness * roughness_curvature(prob)
    cov, note = covariance_from_curvature(curv, sigma2)
    masks: list = [None] * prob.n_spectra
    data: list = [None] * prob.n_spectra
    for g in prob.groups:
        for a, i in enumerate(g.index):
            masks[i] = g.mask.numpy()
            data[i] = (g.x[a] / g.sum_x2[a].sqrt()).double().numpy()
    offs = np.concatenate([[0], np.cumsum([int(m.sum()) for m in masks])])
    blocks = [slice(int(offs[i]), int(offs[i + 1])) for i in range(prob.n_spectra)]
    extra = np.zeros((ptot, ptot))
    extra[:prob.n_params, :prob.n_params] = curv[:prob.n_params, :prob.n_params] - (jac.T @ jac)[:prob.n_params,
                                                                                                  :prob.n_params]
    cal = calibrated_covariance(jac, r0, blocks, masks, [r0[b] + x for b, x in zip(blocks, data)], extra)
    infl = model_error_inflation(maps, masks, n_params=ptot)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.diag(cal["covariance"])[:prob.n_params] / np.diag(cov)[:prob.n_params]
    infl.update({"std_factor": float(np.sqrt(np.nanmean(ratio))), "span_rms": [q["span_rms"] for q in cal["spectra"]],
                 "white_fraction_per_spectrum": [q["white_fraction"] for q in cal["spectra"]],
                 "meaning": cal["meaning"]})
    return {"covariance": cal["covariance"], "covariance_statistical": cov, "sigma2": sigma2,
            "inflation": infl, "note": note, "residual_maps": maps, "n_background": n_b}


def residual_maps(prob: JointProblem, r0: np.ndarray) -> list[np.ndarray]:
    """Residual maps (n_E, n_Q) (NaN off the mask) in series order from the flat residual vector (series order)."""
    maps, pos = [], 0
    where = {int(i): g for g in prob.groups for i in g.index}
    for i in range(prob.n_spectra):
        m = where[i].mask.numpy()
        npix = int(m.sum())
        full = np.full(m.shape, np.nan)
        full[m] = r0[pos:pos + npix]
        maps.append(full)
        pos += npix
    return maps
