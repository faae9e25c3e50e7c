"""Thermal quantities from a model's own phonons: Debye–Waller factor and the incoherent
(multiphonon) expansion. All torch, batched over force-constant sets, differentiable.

Conventions: energies in meV, |Q| in 1/Å, ⟨u_x²⟩ in Å², temperatures in K.
"""
from __future__ import annotations

import math

import torch

from phonon_ml_core.physics.units import KB_MEV_PER_K


def bose(energy: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Bose occupation n(E) = 1/(exp(E/k_B T) − 1) for E > 0 (meV, K; broadcasting)."""
    return 1.0 / torch.expm1(energy / (KB_MEV_PER_K * temperature))


def mean_square_displacement(energies: torch.Tensor, temperature: torch.Tensor, recoil: float) -> torch.Tensor:
    """⟨u_x²⟩ (Å²) of a cubic crystal from mode energies sampled uniformly over the Brillouin zone.

    ``energies`` (B, n_modes) meV > 0; ``temperature`` (B,) K; ``recoil`` = ħ²/2M in meV·Å².
    ⟨u_x²⟩ = (ħ²/2M) ⟨coth(E/2k_BT)/E⟩ over all modes.
    """
    x = energies / (2 * KB_MEV_PER_K * temperature[:, None])
    return recoil * (1.0 / (torch.tanh(x) * energies)).mean(-1)


def one_phonon_incoherent(energies: torch.Tensor, temperature: torch.Tensor, recoil: float, step: float,
                          n_points: int) -> torch.Tensor:
    """A₁(E) on the grid E_i = i·step, i = −n_points//2 … (circular, index 0 = 0 meV), (B, n_points).

    A₁(E) = (ħ²/2M) ⟨[(n+1) δ(E − E_j) + n δ(E + E_j)] / E_j⟩ over modes, so ∫A₁ = ⟨u_x²⟩ and
    Q² A₁ is the incoherent one-phonon S(Q,E) without the Debye–Waller factor. Linear deposition
    keeps it differentiable in the mode energies.
    """
    b, m = energies.shape
    n = bose(energies, temperature[:, None])
    weight = recoil / (energies * m)
    out = energies.new_zeros(b, n_points)
    rows = torch.arange(b, device=energies.device)[:, None] * n_points
    for sign, occ in ((1.0, n + 1.0), (-1.0, n)):
        pos = sign * energies / step
        i0 = torch.floor(pos)
        t = pos - i0
        i0 = i0.long()
        for idx, frac in ((i0, 1 - t), (i0 + 1, t)):
            out.view(-1).index_add_(0, (rows + idx % n_points).reshape(-1), (weight * occ * frac).reshape(-1) / step)
    return out


def multiphonon_orders(a1: torch.Tensor, step: float, max_order: int) -> torch.Tensor:
    """Convolution powers A₁^{*n} for n = 2 … max_order on the circular grid, (B, max_order − 1, n_points)."""
    spec = torch.fft.rfft(a1 * step, dim=-1)
    orders = [spec * spec]
    for _ in range(3, max_order + 1):
        orders.append(orders[-1] * spec)
    out = torch.fft.irfft(torch.stack(orders, 1), n=a1.shape[-1], dim=-1) / step
    return out


def multiphonon_coefficients(q2: torch.Tensor, msd: torch.Tensor, max_order: int) -> torch.Tensor:
    """e^{−2W} Q^{2n}/n! for n = 2 … max_order: q2 (...) in Å⁻², msd (B,) Å² → (B, ..., max_order − 1)."""
    q2 = q2[None]
    two_w = q2 * msd.reshape(-1, *([1] * (q2.dim() - 1)))
    n = torch.arange(2, max_order + 1, device=q2.device, dtype=q2.dtype)
    log_fact = torch.lgamma(n + 1)
    return torch.exp(-two_w[..., None] + n * torch.log(q2[..., None]) - log_fact)


def orders_needed(two_w_max: float, tol: float = 1e-6, cap: int = 30) -> int:
    """Smallest order N with (2W)^N/N! below ``tol`` relative to 2W (at least 2)."""
    n = 2
    while n < cap and two_w_max ** n / math.factorial(n) > tol * max(two_w_max, 1e-12):
        n += 1
    return n
