"""Incoherent scattering of a monatomic cubic crystal: the one-phonon term and multiphonon orders (torch).

Per atom, in units of the total bound cross-section σ_tot/4π (the simulator's normalisation):

* incoherent one-phonon (weight σ_inc/σ_tot; the incoherent approximation is exact for a monatomic cubic
  crystal): χ''_inc(Q,E > 0) = π e^{−2W} Q² (ħ²/2M) ⟨δ(E − E_j)/E_j⟩ over all modes, i.e.
  S_inc(Q,E) = e^{−2W} Q² (ħ²/2M) g(E)/(3E) (n+1) with g the density of states normalised to 3 modes;
* multiphonon orders n ≥ 2 (weight 1: coherent and incoherent scattering together, incoherent approximation):
  Σ_n e^{−2W} Q^{2n}/n! A₁^{*n}(E) (:mod:`phonon_ml_core.simulator.thermal`).

The density of states of the one-phonon term comes from a uniform reciprocal-space sampling solved in the
irreducible wedge (:func:`phonon_ml_core.simulator.mesh.irreducible_cube_points`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from phonon_ml_core.physics.eigen3 import eigvalsh3
from phonon_ml_core.simulator.one_phonon import deposit
from phonon_ml_core.simulator.settings import LAM_FLOOR
from phonon_ml_core.simulator.thermal import (
    multiphonon_coefficients,
    multiphonon_orders,
    one_phonon_incoherent,
    orders_needed,
)


def incoherent_density(dyn: torch.Tensor, weights: torch.Tensor, recoil: float, n_g: int,
                       step: float) -> torch.Tensor:
    """π (ħ²/2M) ⟨δ(E − E_j)/E_j⟩ on the mode grid G, (B, n_G) per meV (χ''_inc / (Q² e^{−2W}) for E > 0).

    ``dyn``: packed D/M (B, N, 6) meV² at sample points with ``weights`` (N,) summing to 1; ``recoil`` ħ²/2M
    in meV Å²; G is E = (i+½)·step, i < n_g.
    """
    lam = eigvalsh3(dyn)
    energy = torch.sqrt(lam.clamp_min(LAM_FLOOR))  # (B, N, 3)
    amp = (math.pi * recoil / 3.0) * weights[None, :, None] / energy
    b = dyn.shape[0]
    return deposit(energy.reshape(b, -1), amp.reshape(b, -1, 1), n_g, step)[..., 0]


def bin_q2_weight(bin_q2: torch.Tensor, msd: torch.Tensor) -> torch.Tensor:
    """⟨Q² e^{−Q²⟨u_x²⟩}⟩ over each |Q| bin's samples: ``bin_q2`` (n_bins, m) Å⁻², ``msd`` (B,) Å² → (B, n_bins)."""
    return (bin_q2[None] * torch.exp(-bin_q2[None] * msd[:, None, None])).mean(-1)


def multiphonon(e_bz: torch.Tensor, temp: torch.Tensor, msd: torch.Tensor, recoil: float, bin_q2: torch.Tensor,
                fine: np.ndarray, step: float, max_order: int) -> torch.Tensor:
    """Multiphonon S (orders ≥ 2, incoherent approximation) on the output window F, (B, n_F, n_bins).

    ``e_bz`` (B, n_modes) meV from a uniform Brillouin-zone sample; ``temp`` (B,) K; ``msd`` (B,) Å²;
    ``bin_q2`` (n_bins, m) |Q|² samples per bin; ``fine`` the window F (meV, spacing ``step``).
    """
    two_w_max = float((bin_q2.max() * msd.max()).detach())
    n_max = max(2, min(max_order, orders_needed(two_w_max)))
    span = n_max * float(e_bz.max().detach()) + float(np.abs(fine).max()) + 10 * step
    n_pts = int(2 ** math.ceil(math.log2(2 * span / step + 2)))
    a1 = one_phonon_incoherent(e_bz, temp, recoil, step, n_pts)
    orders = multiphonon_orders(a1, step, n_max)  # (B, n_max-1, n_pts) on E = i h
    # values at F = (i+½)h: mean of neighbouring integer-grid samples
    fi = torch.as_tensor(np.floor(fine / step).astype(int), device=e_bz.device) % n_pts
    on_f = 0.5 * (orders[..., fi] + orders[..., (fi + 1) % n_pts])
    coef = multiphonon_coefficients(bin_q2, msd, n_max).mean(2)  # (B, n_bins, n_max-1)
    return torch.bmm(on_f.transpose(1, 2), coef.transpose(1, 2))
