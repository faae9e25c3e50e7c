"""Coherent one-phonon scattering of a cubic BvK crystal, powder averaged per |Q| bin (torch, batched).

Both quadratures produce χ'' sticks deposited on the mode-energy grid G (E = (i+½)h, i ≥ 0), a density
(B, n_G, n_bins) per |Q| bin, with the coherent scattering length factored out:

* mesh: each mode (q, j) is a stick at E_qj with weight π (ħ²/2M) tr(P_j T_k(q)) / E_qj in |Q| bin k, where
  P_j is the mode's spectral projector and T_k(q) = ⟨QQᵀ⟩ over the bin's mesh points with that q
  (:mod:`phonon_ml_core.simulator.mesh`);
* sphere: |Q·e_j|² at scrambled-Sobol points in each bin (:mod:`phonon_ml_core.simulator.quadrature`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from phonon_ml_core.physics.eigen3 import all_eigenvalues_above, eigvalsh3, mode_projections
from phonon_ml_core.simulator.mesh import ShellMesh, shell_to_bin_matrix
from phonon_ml_core.simulator.settings import LAM_FLOOR

#: Å: lattice parameters are rounded to this for the |Q|-shell tensors.
A_QUANTUM = 2e-4
#: lattice parameters whose shell tensors are kept (≈ 3 MB each at mesh_density 16).
SHELL_CACHE_SIZE = 96


def one_of_each_pair(bonds: np.ndarray) -> np.ndarray:
    """Indices keeping one bond of each ± pair (bonds in units of a)."""
    keep, seen = [], set()
    for i, v in enumerate(np.round(bonds * 2).astype(int)):
        key = tuple(v)
        if tuple(-v) in seen:
            continue
        seen.add(key)
        keep.append(i)
    return np.array(keep)


def packed_square(d: torch.Tensor) -> torch.Tensor:
    """D² of packed symmetric matrices (..., 6)."""
    xx, yy, zz, xy, xz, yz = d.unbind(-1)
    return torch.stack((xx * xx + xy * xy + xz * xz, xy * xy + yy * yy + yz * yz, xz * xz + yz * yz + zz * zz,
                        xx * xy + xy * yy + xz * yz, xx * xz + xy * yz + xz * zz, xy * xz + yy * yz + yz * zz), -1)


def spectral_projectors(d: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Packed spectral projectors P_j = Π_{k≠j} (D − λ_k)/(λ_j − λ_k) of packed D (..., 6) → (..., 3, 6).

    Near-degenerate pairs are regularised; the sum over a degenerate pair stays accurate.
    """
    d2 = packed_square(d)
    ident = torch.zeros_like(d)
    ident[..., :3] = 1.0
    scale = lam.abs().amax(-1, keepdim=True)
    floor = (1e-5 if lam.dtype == torch.float32 else 1e-10) * scale + torch.finfo(lam.dtype).tiny

    def _safe(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x.abs() < floor, torch.where(x < 0, -floor, floor), x)

    l0, l1, l2 = (x[..., None] for x in lam.unbind(-1))
    out = []
    for lj, la, lb in ((l0, l1, l2), (l1, l0, l2), (l2, l0, l1)):
        out.append((d2 - (la + lb) * d + la * lb * ident) / (_safe(lj - la) * _safe(lj - lb)))
    return torch.stack(out, -2)


def deposit(energy: torch.Tensor, amp: torch.Tensor, n_g: int, step: float) -> torch.Tensor:
    """Linear deposition of χ'' sticks onto the mode grid G (E = (i+½)·step, i < n_g).

    ``energy`` (B, N) meV; ``amp`` (B, N, n_bins) stick weights → densities (B, n_G, n_bins) per meV.
    """
    b, n = energy.shape
    n_bins = amp.shape[-1]
    pos = energy / step - 0.5
    i0 = torch.floor(pos)
    t = pos - i0
    i0 = i0.long()
    out = energy.new_zeros(b * n_g, n_bins)
    base = (torch.arange(b, device=energy.device) * n_g)[:, None]
    for idx, frac in ((i0, 1.0 - t), (i0 + 1, t)):
        ok = (idx >= 0) & (idx < n_g)
        flat = (base + idx.clamp(0, n_g - 1)).reshape(-1)
        out.index_add_(0, flat, (amp * (frac * ok / step)[..., None]).reshape(b * n, n_bins))
    return out.view(b, n_g, n_bins)


def dho_line_parameters(gamma: torch.Tensor, g_energy: torch.Tensor,
                        step: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c, 1/d, norm) of the damped-harmonic-oscillator line of each mode on G, each (B, n_G, 1).

    ``gamma`` (B,): Γ = γ·E_g (dimensionless γ); or (B, 2): Γ = γ0 + γ1·E_g with columns (γ0 in meV, γ1).
    Γ is kept below 0.99·E_g (a line still centred near its mode) and above 10⁻⁶·``step`` meV. With x = E²
    (meV²) the line's antiderivative is norm·atan((x − c)/d): c = E₀² − 2Γ², d = 2Γ√(E₀² − Γ²) (meV²),
    norm = E₀/(π√(E₀² − Γ²)).
    """
    e0 = g_energy[None, :, None]
    if gamma.dim() == 2:  # (γ0 meV, γ1): Γ = γ0 + γ1·E
        gam = gamma[:, 0, None, None].clamp_min(0.0) + gamma[:, 1, None, None].clamp_min(0.0) * e0
        gam = torch.minimum(gam, 0.99 * e0).clamp_min(1e-6 * step)
    else:
        gam = (gamma[:, None, None].clamp(0.0, 0.99) * e0).clamp_min(1e-6 * step)
    e0_sq, gam_sq = e0 * e0, gam * gam
    root = torch.sqrt(e0_sq - gam_sq)
    return e0_sq - 2 * gam_sq, 1.0 / (2 * gam * root), e0 / (math.pi * root)


def dho_kernel(gamma: torch.Tensor, g_energy: torch.Tensor, fine: torch.Tensor, f_sign: torch.Tensor,
               step: float) -> torch.Tensor:
    """M[b, g, f]: fraction of a damped-harmonic-oscillator line of a mode at E_g (HWHM Γ_b(E_g)) in cell f.

    ``gamma`` as :func:`dho_line_parameters`; ``fine`` (n_F,) any cell centres (meV), ``f_sign`` their signs.

    χ''_DHO(E) = (2E₀/π)·2EΓ/((E₀² − E²)² + 4E²Γ²) (unit weight; odd in E) integrated exactly over each
    cell [F_f − h/2, F_f + h/2]: with x = E², c = E₀² − 2Γ², d = 2Γ√(E₀² − Γ²), the antiderivative is
    (E₀/(π√(E₀² − Γ²))) atan((x − c)/d). Exact for any Γ, so Γ → 0 recovers the undamped line. The simulator
    itself uses the cheaper, equal :func:`dho_broaden` on its contiguous cells.
    """
    c, inv_d, norm = dho_line_parameters(gamma, g_energy, step)
    lo = (fine.abs() - 0.5 * step)[None, None, :]
    hi = (fine.abs() + 0.5 * step)[None, None, :]
    mass = norm * (torch.atan((hi ** 2 - c) * inv_d) - torch.atan((lo ** 2 - c) * inv_d))
    return mass * f_sign


def contiguous_cells(fine: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """The |E| cells of a window of cell centres ±(i+½)·``step`` (meV): their edges (n_C + 1,) meV, contiguous
    multiples of ``step``, and the cell of each centre (n_F,) as an index into them."""
    cell = np.round(np.abs(fine) / step - 0.5).astype(int)
    if not np.allclose(np.abs(fine), (cell + 0.5) * step, rtol=0, atol=1e-6 * step):
        raise ValueError("the fine energy window must hold cell centres ±(i+½)·step")
    first, last = int(cell.min()), int(cell.max())
    return np.arange(first, last + 2) * step, cell - first


def dho_broaden(chi_g: torch.Tensor, gamma: torch.Tensor, g_energy: torch.Tensor, edges_sq: torch.Tensor,
                f_cell: torch.Tensor | None, f_sign: torch.Tensor | None, step: float) -> torch.Tensor:
    """χ''(F) (B, n_F, n_bins) of the sticks ``chi_g`` (B, n_G, n_bins) on G, each broadened into its DHO line.

    Equal to ``bmm(dho_kernel(...)ᵀ, chi_g)`` to rounding, at a fraction of the cost: atan once per cell edge
    (``edges_sq`` (n_C + 1,) meV², contiguous cells, see :func:`contiguous_cells`) instead of twice per cell, the
    line's norm folded into the sticks and the edge difference taken after the product, the sign and the
    duplicate ±E cells applied to the output (``f_cell``/``f_sign`` None: the cells are the window, all E > 0),
    and only the modes up to the last non-zero stick (rows of zeros add exactly nothing).
    """
    nonzero = torch.nonzero(chi_g.detach().abs().amax((0, 2)))
    n_used = min(int(nonzero.max()) + 2, chi_g.shape[1]) if len(nonzero) else 1
    c, inv_d, norm = dho_line_parameters(gamma, g_energy[:n_used], step)
    # atan((x − c)/d) at every edge: (B, n_used, n_C + 1)
    cumulative = torch.atan(torch.addcmul(-c * inv_d, edges_sq, inv_d))
    mass = cumulative[..., 1:] - cumulative[..., :-1]  # per cell, before the product (no cancellation across g)
    cells = torch.bmm(mass.transpose(1, 2), chi_g[:, :n_used] * norm)  # (B, n_C, n_bins)
    if f_cell is not None:
        cells = cells[:, f_cell] * f_sign[:, None]
    return cells


class ShellTensors:
    """⟨QQᵀ⟩ per irreducible q and |Q| bin at a lattice parameter, cached (LRU) per rounded a (Å).

    Calling with a returns (N_q, 12, n_bins) packed tensors [⟨QQᵀ⟩ ; ⟨(Q² − Q̄²) QQᵀ⟩] (6 + 6 packed components
    stacked) and Q̄² (n_bins,).
    """

    def __init__(self, mesh: ShellMesh, q_edges: np.ndarray, q_bins: np.ndarray, a_range: tuple[float, float],
                 dtype: torch.dtype, device: torch.device):
        self.mesh, self.q_edges, self.q_bins, self.a_range = mesh, q_edges, q_bins, a_range
        self.dtype, self.device = dtype, device
        self._cache: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self._tensor = torch.as_tensor(mesh.tensor).permute(1, 0, 2).reshape(mesh.tensor.shape[1], -1).contiguous()

    def __call__(self, a: float) -> tuple[torch.Tensor, torch.Tensor]:
        key = round(a, 6)
        if key in self._cache:
            self._cache[key] = self._cache.pop(key)  # most recently used last
            return self._cache[key]
        while len(self._cache) >= SHELL_CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        if not self.a_range[0] <= a <= self.a_range[1]:
            raise ValueError(f"lattice parameter {a} Å is outside the range this simulator was built for "
                             f"({self.a_range[0]:.3f}–{self.a_range[1]:.3f} Å): build it with a model of that a")
        mesh = self.mesh
        scale = 2 * np.pi / a
        edges = mesh.shell_edges * scale
        frac = shell_to_bin_matrix(edges, self.q_edges)[:, self.q_bins]  # (n_sub, n_bins)
        q2 = (0.5 * (edges[1:] + edges[:-1])) ** 2
        count = mesh.count @ frac
        ok = count > 0
        q2bar = np.where(ok, (mesh.count * q2) @ frac / np.where(ok, count, 1), 0.0)
        n_q = mesh.q.shape[0]
        # each sub-shell overlaps ≤ 2 bins: a sparse product, rows gathered and added
        s_idx, k_idx = np.nonzero(frac)
        wgt = frac[s_idx, k_idx] / count[k_idx].clip(min=1) * scale**2
        rows = self._tensor[torch.as_tensor(s_idx)]
        k_t = torch.as_tensor(k_idx)
        zeros = rows.new_zeros(len(self.q_bins), rows.shape[1])
        t0 = zeros.index_add(0, k_t, rows * torch.as_tensor(wgt, dtype=rows.dtype)[:, None])
        t1 = zeros.index_add(0, k_t, rows * torch.as_tensor(wgt * q2[s_idx], dtype=rows.dtype)[:, None])
        t1 = t1 - t0 * torch.as_tensor(q2bar, dtype=rows.dtype)[:, None]
        t0 = t0.view(-1, n_q, 6).permute(1, 0, 2)  # (N_q, n_bins, 6)
        t1 = t1.view(-1, n_q, 6).permute(1, 0, 2)
        both = torch.cat((t0, t1), 2).permute(0, 2, 1).contiguous()  # (N_q, 12, n_bins)
        self._cache[key] = (both.to(self.dtype).to(self.device),
                            torch.as_tensor(q2bar, dtype=self.dtype, device=self.device))
        return self._cache[key]


def unstable_points(dyn: torch.Tensor) -> torch.Tensor:
    """True per spectrum (B,) when any packed D/M (B, N, 6) has an eigenvalue below −LAM_FLOOR meV².

    Sylvester's criterion, not :func:`eigvalsh3`'s minimum: the closed form loses ~√ε·|D| at a degenerate
    transverse pair (float32: ~0.5 meV² on the [111] line), which flagged stable sets as unstable.
    """
    return ~all_eigenvalues_above(dyn, -LAM_FLOOR).all(1)


def one_phonon_mesh(dyn: torch.Tensor, a: torch.Tensor, msd: torch.Tensor, shells: ShellTensors,
                    trace_w: torch.Tensor, recoil: float, n_g: int, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Coherent one-phonon χ'' on G from the reciprocal-space mesh, (B, n_G, n_bins), and the unstable flags (B,).

    ``dyn``: packed D/M (B, N_q, 6) meV² at the irreducible mesh points; ``a`` (B,) Å; ``msd`` (B,) Å² (zeros
    without the Debye–Waller factor); ``recoil`` ħ²/2M (meV Å²). The linear-deposition fractions are folded
    into P_j so the big (q, mode, bin) weight array comes from one batched matrix product for both deposition sides.
    """
    b = dyn.shape[0]
    lam = eigvalsh3(dyn)
    bad = unstable_points(dyn)
    energy = torch.sqrt(lam.clamp_min(LAM_FLOOR))  # (B, N_q, 3)
    proj = spectral_projectors(dyn, lam) * trace_w  # (B, N_q, 3, 6)
    proj = proj * (math.pi * recoil / (energy * step))[..., None]
    n_q, n_bins = energy.shape[1], len(shells.q_bins)
    pos = energy / step - 0.5
    i0 = torch.floor(pos)
    t = pos - i0
    i0 = i0.long()
    out = energy.new_zeros(b * n_g, n_bins)
    base = (torch.arange(b, device=dyn.device) * n_g)[:, None, None]
    a_key = torch.round(a.detach() / A_QUANTUM) * A_QUANTUM  # shells only need a to ~1e-4 relative
    keys = [float(x) for x in a_key]
    shared = len(set(keys)) == 1
    tens = shells(keys[0])[0] if shared else torch.stack([shells(k)[0] for k in keys])
    # both deposition sides in one product, the Debye–Waller term in the contraction:
    # w = P·⟨QQᵀ⟩ − ⟨u²⟩ P·⟨(Q² − Q̄²)QQᵀ⟩ = [P, −⟨u²⟩P] · [T0; T1], weighted projectors (2, B, N_q, 3, 12)
    sides = torch.stack((i0, i0 + 1))
    fracs = torch.stack((1.0 - t, t)) * ((sides >= 0) & (sides < n_g))
    pj = proj[None] * fracs[..., None]
    pj = torch.cat((pj, pj * -msd[None, :, None, None, None]), -1)
    if shared:  # (N_q, 2·B·3, 12) @ (N_q, 12, K)
        w = torch.bmm(pj.permute(2, 0, 1, 3, 4).reshape(n_q, -1, 12), tens)
        flat = (base + sides.clamp(0, n_g - 1)).permute(2, 0, 1, 3)  # (N_q, 2, B, 3), w's layout
    else:  # per spectrum: (B·N_q, 2·3, 12) @ (B·N_q, 12, K)
        w = torch.bmm(pj.permute(1, 2, 0, 3, 4).reshape(b * n_q, 6, 12), tens.reshape(b * n_q, 12, n_bins))
        flat = (base + sides.clamp(0, n_g - 1)).permute(1, 2, 0, 3)  # (B, N_q, 2, 3)
    out.index_add_(0, flat.reshape(-1), w.reshape(-1, n_bins))
    out = out.view(b, n_g, n_bins)
    q2 = torch.stack([shells(k)[1] for k in keys])  # (B, n_bins)
    return out * torch.exp(-q2 * msd[:, None])[:, None, :], bad


def one_phonon_sphere(dyn: torch.Tensor, q_vec: torch.Tensor, q2_points: torch.Tensor, bin_of_point: torch.Tensor,
                      n_bins: int, msd: torch.Tensor, recoil: float, n_per_bin: int, n_g: int,
                      step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Coherent one-phonon χ'' on G from |Q| × direction points per bin, (B, n_G, n_bins), and unstable flags."""
    b = dyn.shape[0]
    lam = eigvalsh3(dyn)
    bad = unstable_points(dyn)
    proj = mode_projections(dyn, lam, q_vec.expand(b, -1, -1))  # (B, P, 3) Å⁻²
    energy = torch.sqrt(lam.clamp_min(LAM_FLOOR))
    amp = math.pi * recoil * proj / energy / n_per_bin
    amp = amp * torch.exp(-q2_points[None, :, None] * msd[:, None, None])
    onehot = torch.nn.functional.one_hot(bin_of_point, n_bins).to(amp.dtype)  # (P, n_bins)
    amp_bins = amp[..., None] * onehot[None, :, None, :]  # (B, P, 3, n_bins)
    return deposit(energy.reshape(b, -1), amp_bins.reshape(b, -1, n_bins), n_g, step), bad
