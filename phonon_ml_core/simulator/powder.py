"""Batched, differentiable powder INS simulator: χ''(|Q|,E) or S(|Q|,E) of a cubic BvK crystal.

Physics (per atom, S in 1/meV, the coherent b² factored out):

* coherent one-phonon scattering, powder averaged over directions of Q:
  S₁(Q,E) = e^{−2W} (ħ²/2M) Σ_j |Q·e_j|²/E_j [(n_j+1) δ(E−E_j) + n_j δ(E+E_j)];
* Debye–Waller factor 2W = Q² ⟨u_x²⟩ from the model's own phonons at temperature T;
* multiphonon orders n ≥ 2 in the incoherent approximation from the model's density of states;
* optional intrinsic linewidth: damped-harmonic-oscillator line shape with HWHM Γ = γ·E_j;
* instrumental energy resolution (resins, PyChop model), averaging over |Q| and E bins;
* χ'' = π (1 − e^{−E/k_BT}) S (Mantid's ApplyDetailedBalance), NaN outside coverage, mean
  normalisation on the valid pixels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from phonon_ml_core.physics.units import (AL_MASS_U, FC_TO_MEV2, HBAR2_OVER_2MN_MEV_A2, KB_MEV_PER_K, NEUTRON_MASS_U,
                         aluminium_lattice_parameter)
from phonon_ml_core.data.grid import Grid, standard_grid
from phonon_ml_core.physics.bvk import BvKModel, bz_sample
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.simulator.eigen3 import PACKED, eigvalsh3, mode_projections
from phonon_ml_core.simulator.mesh import TRACE_WEIGHTS, shell_mesh, shell_to_bin_matrix
from phonon_ml_core.simulator.quadrature import powder_quadrature
from phonon_ml_core.simulator.resolution import Resolution, binned_gaussian_kernel
from phonon_ml_core.simulator.thermal import (mean_square_displacement, multiphonon_coefficients, multiphonon_orders,
                      one_phonon_incoherent, orders_needed)


class UnstableForceConstantsError(ValueError):
    """Raised for force constants with imaginary phonon frequencies."""

    def __init__(self, indices: np.ndarray, n_total: int):
        self.indices = np.asarray(indices)
        super().__init__(f"{len(self.indices)} of {n_total} force-constant sets are dynamically unstable (imaginary "
                         f"frequencies), e.g. set(s) {self.indices[:5].tolist()}: check the signs and magnitudes "
                         "(1XX and 1XX + 1ZZ must be positive) or sample a narrower range")


@dataclass
class SimulationSettings:
    """Numerical and physical switches of the simulator.

    Attributes:
        method: "mesh" (uniform reciprocal-space grid, eigenproblems in the irreducible 1/48 wedge; fast)
            or "sphere" (scrambled-Sobol |Q| × direction points per bin; an independent cross-check).
        mesh_density: grid points per 2π/a along each axis for "mesh".
        n_per_bin: points per |Q| bin for "sphere".
        energy_step: fine energy grid spacing, meV (≪ resolution σ).
        debye_waller: include e^{−2W}.
        multiphonon: include orders ≥ 2 (incoherent approximation).
        max_order: highest multiphonon order (fewer are used when they are negligible).
        bz_grid: n for the n³ Brillouin-zone sampling of the DOS and ⟨u²⟩.
        quantity: "chi''" or "S".
        normalize: mean-normalise on the valid pixels (conventions §3).
        resolution_scale: multiplies the instrumental σ (0 = no instrumental broadening).
        chopper_package, chopper_frequency, instrument: resins settings.
        quadrature_seed: seed of the (deterministic) scrambled Sobol sequence.
    """

    method: str = "mesh"
    mesh_density: int = 16
    n_per_bin: int = 1024
    energy_step: float = 0.1
    debye_waller: bool = True
    multiphonon: bool = True
    max_order: int = 10
    bz_grid: int = 12
    quantity: str = "chi''"
    normalize: bool = True
    resolution_scale: float = 1.0
    instrument: str = "ARCS"
    chopper_package: str = "ARCS-100-1.5-AST"
    chopper_frequency: int = 300
    quadrature_seed: int = 20240521

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SimulationInputs:
    """Per-spectrum inputs as tensors of one batch (B spectra)."""

    force_constants: torch.Tensor  # (B, K) N/m
    temperature: torch.Tensor      # (B,) K
    lattice_parameter: torch.Tensor  # (B,) Å
    linewidth: torch.Tensor | None = None  # (B,) γ, HWHM = γ E


class PowderSimulator(torch.nn.Module):
    """Simulate powder spectra on a grid for batches of force constants.

    Args:
        grid: target grid (default: the standard ARCS Ei = 50 meV grid).
        model: template BvK model giving lattice type, shells, mass (its constants are ignored).
        settings: numerical settings.
        lattice_parameter: Å, or a function of temperature (default: aluminium a(T) when the mass is Al's,
            else the template's lattice parameter).
        dtype, device: torch dtype (float32 default) and device.
    """

    def __init__(self, grid: Grid | None = None, model: BvKModel | None = None,
                 settings: SimulationSettings | None = None,
                 lattice_parameter: float | Callable[[np.ndarray], np.ndarray] | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        super().__init__()
        self.grid = standard_grid() if grid is None else grid
        self.grid.check_coverage()
        self.model = BvKModel.aluminium() if model is None else model
        self.settings = SimulationSettings() if settings is None else settings
        if self.settings.quantity not in ("chi''", "S"):
            raise ValueError(f"quantity must be \"chi''\" or \"S\", got {self.settings.quantity!r}")
        if lattice_parameter is None:
            lattice_parameter = (aluminium_lattice_parameter if abs(self.model.mass - AL_MASS_U) < 1e-3
                                 else self.model.lattice_parameter)
        self.lattice_parameter_of_t = lattice_parameter
        self.dtype, self.device = dtype, torch.device(device)
        self.resolution = Resolution(self.settings.instrument, self.settings.chopper_package,
                                     self.settings.chopper_frequency, self.grid.ei_mev, self.settings.resolution_scale)
        self._build()

    # ------------------------------------------------------------------ set-up
    @property
    def n_constants(self) -> int:
        return len(self.model.names)

    def _t(self, x) -> torch.Tensor:
        return torch.as_tensor(np.array(x), dtype=self.dtype, device=self.device)

    def _build(self) -> None:
        s, g = self.settings, self.grid
        h = s.energy_step
        self.recoil = HBAR2_OVER_2MN_MEV_A2 * NEUTRON_MASS_U / self.model.mass  # ħ²/2M, meV Å²
        self.lam_scale = FC_TO_MEV2 / self.model.mass  # N/m → meV²
        # |Q| bins with coverage
        self.q_bins = np.where(g.mask.any(axis=0))[0]
        bonds = self.model.bond_vectors / self.model.lattice_parameter  # units of a
        keep = _one_of_each_pair(bonds)
        basis6 = np.stack([self.model.bond_basis[keep][..., i, j] for i, j in PACKED], -1)  # (L/2, K, 6)
        self.register_buffer("basis6", self._t(2.0 * basis6), persistent=False)
        if s.method == "sphere":
            quad = powder_quadrature(g.q_edges, self.q_bins, s.n_per_bin, s.quadrature_seed)
            self.register_buffer("q_vec", self._t(quad.q_vectors), persistent=False)
            self.register_buffer("q_dot_r", self._t(quad.q_vectors @ bonds[keep].T), persistent=False)
            self.register_buffer("q2_points", self._t((quad.q_vectors ** 2).sum(1)), persistent=False)
            self.register_buffer("bin_of_point", torch.as_tensor(quad.bin_index, device=self.device),
                                 persistent=False)
        elif s.method == "mesh":
            a0 = float(self.model.lattice_parameter)
            self.a_range = (0.9 * a0, 1.1 * a0)
            lo = max(g.q_edges[self.q_bins[0]], 0.0) * self.a_range[0] / (2 * np.pi)
            hi = g.q_edges[self.q_bins[-1] + 1] * self.a_range[1] / (2 * np.pi)
            self.mesh = shell_mesh(s.mesh_density, float(lo), float(hi))
            self.register_buffer("mesh_phase", self._t(1.0 - np.cos(2 * np.pi * self.mesh.q @ bonds[keep].T)),
                                 persistent=False)
            self.register_buffer("trace_w", self._t(TRACE_WEIGHTS), persistent=False)
            self._shell_cache: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
            self._mesh_tensor = torch.as_tensor(self.mesh.tensor).permute(1, 0, 2).reshape(
                self.mesh.tensor.shape[1], -1).contiguous()
        else:
            raise ValueError(f"unknown powder-average method {s.method!r}: choose 'mesh' or 'sphere'")
        # Brillouin-zone sample (phases are independent of a)
        bz = bz_sample(self.model.lattice, 1.0, s.bz_grid)
        self.register_buffer("bz_phase", self._t(1.0 - np.cos(bz @ bonds[keep].T)), persistent=False)
        # fine energy grids: F (output window, ±(i+½)h) and G (mode energies, (i+½)h ≥ 0)
        sig_max = float(self.resolution.sigma(np.array([g.energy_edges.min(), g.energy_edges.max(), 0.0])).max())
        margin = 6 * sig_max + 4 * h
        lo, hi = g.energy_edges[0] - margin, g.energy_edges[-1] + margin
        f_idx = np.arange(math.floor(lo / h - 0.5), math.ceil(hi / h - 0.5) + 1)
        fine = (f_idx + 0.5) * h
        fine = fine[np.abs(fine) < g.ei_mev + margin]
        self.fine = fine
        self.n_g = int(math.ceil((1.5 * np.abs(fine).max() + 5.0) / h))
        self.g_energy = (np.arange(self.n_g) + 0.5) * h
        g_index = np.round(np.abs(fine) / h - 0.5).astype(int)
        self.register_buffer("f_from_g", torch.as_tensor(g_index, device=self.device), persistent=False)
        self.register_buffer("f_sign", self._t(np.sign(fine)), persistent=False)
        self.register_buffer("fine_t", self._t(fine), persistent=False)
        self.register_buffer("g_t", self._t(self.g_energy), persistent=False)
        sigma = self.resolution.sigma(fine)
        self.register_buffer("res_kernel_t", self._t(binned_gaussian_kernel(fine, sigma, g.energy_edges).T * h),
                             persistent=False)
        self.register_buffer("e_centres", self._t(g.energy), persistent=False)
        self.register_buffer("mask_t", torch.as_tensor(g.mask.copy(), device=self.device), persistent=False)
        # |Q|² samples across each bin (for the multiphonon coefficients)
        u = (np.arange(8) + 0.5) / 8
        qlo, qhi = np.maximum(g.q_edges[self.q_bins], 0.0), g.q_edges[self.q_bins + 1]
        self.register_buffer("bin_q2", self._t((qlo[:, None] + u[None] * (qhi - qlo)[:, None]) ** 2),
                             persistent=False)

    # ------------------------------------------------------------------ inputs
    def prepare(self, force_constants, temperature, lattice_parameter=None, linewidth=None) -> SimulationInputs:
        """Validate and broadcast per-spectrum inputs into tensors."""
        fc = torch.as_tensor(force_constants, dtype=self.dtype, device=self.device)
        if fc.dim() == 1:
            fc = fc[None]
        if fc.dim() != 2 or fc.shape[1] != self.n_constants:
            raise ValueError(f"expected {self.n_constants} force constants per set ({', '.join(self.model.names)}), "
                             f"got shape {tuple(fc.shape)}")
        if not torch.isfinite(fc).all():
            raise ValueError("force constants contain NaN or infinity: give finite values in N/m")
        b = fc.shape[0]
        t = torch.as_tensor(temperature, dtype=self.dtype, device=self.device).reshape(-1).expand(b) \
            if torch.as_tensor(temperature).numel() == 1 else torch.as_tensor(temperature, dtype=self.dtype,
                                                                               device=self.device).reshape(-1)
        if t.numel() != b:
            raise ValueError(f"{t.numel()} temperatures for {b} force-constant sets")
        if not torch.isfinite(t).all() or (t <= 0).any():
            raise ValueError("temperature must be a positive number of kelvin (T > 0)")
        if lattice_parameter is None:
            lp = self.lattice_parameter_of_t
            a = lp(t.detach().cpu().numpy().astype(float)) if callable(lp) else np.full(b, float(lp))
            a = torch.as_tensor(np.broadcast_to(a, (b,)).copy(), dtype=self.dtype, device=self.device)
        else:
            a = torch.as_tensor(lattice_parameter, dtype=self.dtype, device=self.device).reshape(-1).expand(b)
        if not torch.isfinite(a).all() or (a <= 0).any():
            raise ValueError("lattice parameter must be a positive number of Å")
        lw = None
        if linewidth is not None:
            lw = torch.as_tensor(linewidth, dtype=self.dtype, device=self.device).reshape(-1).expand(b)
            if not torch.isfinite(lw).all() or (lw < 0).any():
                raise ValueError("linewidth γ must be finite and ≥ 0 (HWHM = γ·E)")
        return SimulationInputs(fc, t, a, lw)

    # ------------------------------------------------------------------ physics
    def _squared_energies(self, phase: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
        """Packed D/M in meV² (B, P, 6) from phases (B, P, L/2) and constants (B, K)."""
        phi = torch.einsum("bk,lkm->blm", fc, self.basis6) * self.lam_scale  # (B, L/2, 6)
        return torch.bmm(phase, phi)

    def bz_energies(self, inp: SimulationInputs) -> torch.Tensor:
        """Squared mode energies (meV²) on the Brillouin-zone sample, (B, n_bz·3)."""
        phase = self.bz_phase.expand(inp.force_constants.shape[0], -1, -1)
        return eigvalsh3(self._squared_energies(phase, inp.force_constants)).flatten(1)

    def forward(self, force_constants, temperature, lattice_parameter=None, linewidth=None,
                allow_unstable: bool = False) -> torch.Tensor:
        """Spectra (B, n_E, n_Q), NaN outside the mask; differentiable in the force constants and γ.

        With ``allow_unstable`` unstable sets give NaN spectra instead of an error.
        """
        inp = force_constants if isinstance(force_constants, SimulationInputs) else \
            self.prepare(force_constants, temperature, lattice_parameter, linewidth)
        s = self.settings
        fc, temp, a = inp.force_constants, inp.temperature, inp.lattice_parameter
        b = fc.shape[0]
        # --- stability and thermal quantities from the Brillouin-zone sample
        lam_bz = self.bz_energies(inp)
        unstable = lam_bz.amin(1) <= _LAM_FLOOR
        e_bz = torch.sqrt(lam_bz.clamp_min(_LAM_FLOOR))
        msd = mean_square_displacement(e_bz, temp, self.recoil) if (s.debye_waller or s.multiphonon) \
            else fc.new_zeros(b)
        if s.method == "mesh":
            chi_g, bad = self._one_phonon_mesh(fc, a, msd if s.debye_waller else torch.zeros_like(msd))
        else:
            chi_g, bad = self._one_phonon_sphere(fc, a, msd if s.debye_waller else torch.zeros_like(msd))
        unstable = unstable | bad
        if unstable.any() and not allow_unstable:
            raise UnstableForceConstantsError(torch.where(unstable)[0].cpu().numpy(), b)
        # --- map onto the output window F (odd in E), with optional DHO linewidth; layout (B, energy, |Q| bin)
        if inp.linewidth is not None and bool((inp.linewidth > 0).any()):
            chi_f = torch.bmm(self._dho_kernel(inp.linewidth).transpose(1, 2), chi_g)
        else:
            chi_f = chi_g[:, self.f_from_g, :] * self.f_sign[:, None]
        # --- S on F; + multiphonon; resolution and E-bin average
        db = math.pi * (-torch.expm1(-self.fine_t[None, :] / (KB_MEV_PER_K * temp[:, None])))  # (B, n_F)
        s_f = chi_f / db[:, :, None]
        if s.multiphonon:
            s_f = s_f + self._multiphonon(e_bz, temp, msd)
        out = torch.matmul(self.res_kernel_t, s_f)  # (B, n_E, n_bins)
        if s.quantity == "chi''":
            out = out * (math.pi * -torch.expm1(-self.e_centres[None, :] / (KB_MEV_PER_K * temp[:, None])))[:, :, None]
        spectra = out.new_full((b, self.grid.energy.size, self.grid.q.size), float("nan"))
        spectra[:, :, self.q_bins] = out
        spectra = torch.where(self.mask_t, spectra, torch.full_like(spectra, float("nan")))
        if s.normalize:
            spectra = mean_normalize(spectra, self.grid.mask)
        if unstable.any():
            spectra = torch.where(unstable[:, None, None], torch.full_like(spectra, float("nan")), spectra)
        return spectra

    def _deposit(self, energy: torch.Tensor, amp: torch.Tensor) -> torch.Tensor:
        """Linear deposition of χ'' sticks onto the mode grid G.

        ``energy`` (B, N) meV; ``amp`` (B, N, n_bins) stick weights per |Q| bin → densities (B, n_G, n_bins).
        """
        h = self.settings.energy_step
        b, n = energy.shape
        n_bins = amp.shape[-1]
        pos = energy / h - 0.5
        i0 = torch.floor(pos)
        t = pos - i0
        i0 = i0.long()
        out = energy.new_zeros(b * self.n_g, n_bins)
        base = (torch.arange(b, device=self.device) * self.n_g)[:, None]
        for idx, frac in ((i0, 1.0 - t), (i0 + 1, t)):
            ok = (idx >= 0) & (idx < self.n_g)
            flat = (base + idx.clamp(0, self.n_g - 1)).reshape(-1)
            out.index_add_(0, flat, (amp * (frac * ok / h)[..., None]).reshape(b * n, n_bins))
        return out.view(b, self.n_g, n_bins)

    def _one_phonon_mesh(self, fc: torch.Tensor, a: torch.Tensor, msd: torch.Tensor):
        """Coherent one-phonon χ'' on G from the reciprocal-space mesh, (B, n_G, n_bins).

        Each mode (q, j) is a stick at E_qj with weight π (ħ²/2M) tr(P_j T_k(q)) / E_qj in |Q| bin k,
        where P_j is the mode's spectral projector and T_k(q) = ⟨QQᵀ⟩ over the bin's points with that q.
        The linear-deposition fractions are folded into P_j so the big (q, mode, bin) weight array is
        produced directly by one batched matrix product per deposition side.
        """
        h = self.settings.energy_step
        b = fc.shape[0]
        dyn = self._squared_energies(self.mesh_phase.expand(b, -1, -1), fc)  # (B, N_q, 6) meV²
        lam = eigvalsh3(dyn)
        bad = lam.amin((1, 2)) < -_LAM_FLOOR
        energy = torch.sqrt(lam.clamp_min(_LAM_FLOOR))  # (B, N_q, 3)
        proj = _spectral_projectors(dyn, lam) * self.trace_w  # (B, N_q, 3, 6)
        proj = proj * (math.pi * self.recoil / (energy * h))[..., None]
        n_q, n_bins = energy.shape[1], len(self.q_bins)
        pos = energy / h - 0.5
        i0 = torch.floor(pos)
        t = pos - i0
        i0 = i0.long()
        out = energy.new_zeros(b * self.n_g, n_bins)
        base = (torch.arange(b, device=self.device) * self.n_g)[:, None, None]
        a_key = torch.round(a.detach() / _A_QUANTUM) * _A_QUANTUM  # shells only need a to ~1e-4 relative
        keys = [float(x) for x in a_key]
        shared = len(set(keys)) == 1
        tens = self._shell_tensors(keys[0])[0] if shared else \
            torch.stack([self._shell_tensors(k)[0] for k in keys])  # (N_q, 6, 2K) or (B, N_q, 6, 2K)
        u = msd[:, None, None, None]
        for idx, frac in ((i0, 1.0 - t), (i0 + 1, t)):
            ok = (idx >= 0) & (idx < self.n_g)
            pj = proj * (frac * ok)[..., None]  # (B, N_q, 3, 6)
            if shared:
                tr = torch.bmm(pj.permute(1, 0, 2, 3).reshape(n_q, -1, 6), tens)
                tr = tr.view(n_q, b, 3, 2 * n_bins).transpose(0, 1)  # (B, N_q, 3, 2K)
            else:
                tr = torch.bmm(pj.reshape(b * n_q, 3, 6), tens.reshape(b * n_q, 6, -1)).view(b, n_q, 3, -1)
            w = torch.addcmul(tr[..., :n_bins], u, tr[..., n_bins:], value=-1.0)
            flat = (base + idx.clamp(0, self.n_g - 1)).reshape(-1)
            out.index_add_(0, flat, w.reshape(-1, n_bins))
        out = out.view(b, self.n_g, n_bins)
        q2 = torch.stack([self._shell_tensors(k)[1] for k in keys])  # (B, n_bins)
        return out * torch.exp(-q2 * msd[:, None])[:, None, :], bad

    def _shell_tensors(self, a: float):
        """⟨QQᵀ⟩ per irreducible q and |Q| bin and its |Q|²-slope (for the Debye–Waller factor) at a (Å).

        Returns (N_q, 6, 2·n_bins) packed tensors [⟨QQᵀ⟩ | ⟨(Q² − Q̄²) QQᵀ⟩] and Q̄² (n_bins,).
        """
        key = round(a, 6)
        if key in self._shell_cache:
            self._shell_cache[key] = self._shell_cache.pop(key)  # most recently used last
        else:
            while len(self._shell_cache) >= _SHELL_CACHE_SIZE:
                self._shell_cache.pop(next(iter(self._shell_cache)))
            if not self.a_range[0] <= a <= self.a_range[1]:
                raise ValueError(f"lattice parameter {a} Å is outside the range this simulator was built for "
                                 f"({self.a_range[0]:.3f}–{self.a_range[1]:.3f} Å): build it with a model of that a")
            mesh, g = self.mesh, self.grid
            scale = 2 * np.pi / a
            edges = mesh.shell_edges * scale
            frac = shell_to_bin_matrix(edges, g.q_edges)[:, self.q_bins]  # (n_sub, n_bins)
            q2 = (0.5 * (edges[1:] + edges[:-1])) ** 2
            count = mesh.count @ frac
            ok = count > 0
            q2bar = np.where(ok, (mesh.count * q2) @ frac / np.where(ok, count, 1), 0.0)
            ten = self._mesh_tensor  # (n_sub, N_q·6) float32, sub-shells as rows
            n_q = mesh.q.shape[0]
            # each sub-shell overlaps ≤ 2 bins: a sparse product, rows gathered and added
            s_idx, k_idx = np.nonzero(frac)
            wgt = frac[s_idx, k_idx] / count[k_idx].clip(min=1) * scale**2
            rows = ten[torch.as_tensor(s_idx)]
            k_t = torch.as_tensor(k_idx)
            zeros = rows.new_zeros(len(self.q_bins), rows.shape[1])
            t0 = zeros.index_add(0, k_t, rows * torch.as_tensor(wgt, dtype=rows.dtype)[:, None])
            t1 = zeros.index_add(0, k_t, rows * torch.as_tensor(wgt * q2[s_idx], dtype=rows.dtype)[:, None])
            t1 = t1 - t0 * torch.as_tensor(q2bar, dtype=rows.dtype)[:, None]
            t0 = t0.view(-1, n_q, 6).permute(1, 0, 2)  # (N_q, n_bins, 6)
            t1 = t1.view(-1, n_q, 6).permute(1, 0, 2)
            both = torch.cat((t0, t1), 1).permute(0, 2, 1).contiguous()  # (N_q, 6, 2·n_bins)
            self._shell_cache[key] = (both.to(self.dtype).to(self.device), self._t(q2bar))
        return self._shell_cache[key]

    def _one_phonon_sphere(self, fc: torch.Tensor, a: torch.Tensor, msd: torch.Tensor):
        """Coherent one-phonon χ'' on G from |Q| × direction points per bin, (B, n_bins, n_G)."""
        b = fc.shape[0]
        phase = 1.0 - torch.cos(a[:, None, None] * self.q_dot_r[None])  # (B, P, L/2)
        dyn = self._squared_energies(phase, fc)
        lam = eigvalsh3(dyn)
        bad = lam.amin((1, 2)) < -_LAM_FLOOR
        proj = mode_projections(dyn, lam, self.q_vec.expand(b, -1, -1))  # (B, P, 3) Å⁻²
        energy = torch.sqrt(lam.clamp_min(_LAM_FLOOR))
        amp = math.pi * self.recoil * proj / energy / self.settings.n_per_bin
        amp = amp * torch.exp(-self.q2_points[None, :, None] * msd[:, None, None])
        onehot = torch.nn.functional.one_hot(self.bin_of_point, len(self.q_bins)).to(amp.dtype)  # (P, n_bins)
        amp_bins = amp[..., None] * onehot[None, :, None, :]  # (B, P, 3, n_bins)
        return self._deposit(energy.reshape(b, -1), amp_bins.reshape(b, -1, len(self.q_bins))), bad

    def _dho_kernel(self, gamma: torch.Tensor) -> torch.Tensor:
        """M[b, g, f]: fraction of a damped-harmonic-oscillator line of a mode at E_g (HWHM Γ = γ_b E_g) in cell f of F.

        χ''_DHO(E) = (2E₀/π)·2EΓ/((E₀² − E²)² + 4E²Γ²) (unit weight; odd in E) integrated exactly over each
        cell [F_f − h/2, F_f + h/2]: with x = E², c = E₀² − 2Γ², d = 2Γ√(E₀² − Γ²), the antiderivative is
        (E₀/(π√(E₀² − Γ²))) atan((x − c)/d). Exact for any Γ, so Γ → 0 recovers the undamped line.
        """
        h = self.settings.energy_step
        e0 = self.g_t[None, :, None]
        gam = (gamma[:, None, None].clamp(0.0, 0.99) * e0).clamp_min(1e-6 * h)
        root = torch.sqrt(e0 ** 2 - gam ** 2)
        c = e0 ** 2 - 2 * gam ** 2
        d = 2 * gam * root
        lo = (self.fine_t.abs() - 0.5 * h)[None, None, :]
        hi = (self.fine_t.abs() + 0.5 * h)[None, None, :]
        mass = (e0 / (math.pi * root)) * (torch.atan((hi ** 2 - c) / d) - torch.atan((lo ** 2 - c) / d))
        return mass * self.f_sign

    def _multiphonon(self, e_bz: torch.Tensor, temp: torch.Tensor, msd: torch.Tensor) -> torch.Tensor:
        """Multiphonon S (orders ≥ 2, incoherent approximation) on F, (B, n_F, n_bins)."""
        s = self.settings
        h = s.energy_step
        two_w_max = float((self.bin_q2.max() * msd.max()).detach())
        n_max = max(2, min(s.max_order, orders_needed(two_w_max)))
        span = n_max * float(e_bz.max().detach()) + float(np.abs(self.fine).max()) + 10 * h
        n_pts = int(2 ** math.ceil(math.log2(2 * span / h + 2)))
        a1 = one_phonon_incoherent(e_bz, temp, self.recoil, h, n_pts)
        orders = multiphonon_orders(a1, h, n_max)  # (B, n_max-1, n_pts) on E = i h
        # values at F = (i+½)h: mean of neighbouring integer-grid samples
        fi = torch.as_tensor(np.floor(self.fine / h).astype(int), device=self.device) % n_pts
        on_f = 0.5 * (orders[..., fi] + orders[..., (fi + 1) % n_pts])
        coef = multiphonon_coefficients(self.bin_q2, msd, n_max).mean(2)  # (B, n_bins, n_max-1)
        return torch.bmm(on_f.transpose(1, 2), coef.transpose(1, 2))

    # ------------------------------------------------------------------ convenience
    def describe(self) -> dict:
        """Settings, resolution and grid, for provenance."""
        return {"settings": self.settings.to_dict(), "resolution": self.resolution.to_dict(),
                "model": {"lattice": self.model.lattice, "n_shells": self.model.n_shells,
                          "mass_u": self.model.mass, "constants": list(self.model.names)},
                "grid": {k: v for k, v in self.grid.to_dict().items() if k not in ("q", "energy")}}


_LAM_FLOOR = 1e-6  # meV²: squared energies below this count as unstable
_A_QUANTUM = 2e-4  # Å: lattice parameters are rounded to this for the |Q|-shell tensors
_SHELL_CACHE_SIZE = 96  # lattice parameters whose shell tensors are kept (≈ 3 MB each at mesh_density 16)


def _packed_square(d: torch.Tensor) -> torch.Tensor:
    """D² of packed symmetric matrices (..., 6)."""
    xx, yy, zz, xy, xz, yz = d.unbind(-1)
    return torch.stack((xx * xx + xy * xy + xz * xz, xy * xy + yy * yy + yz * yz, xz * xz + yz * yz + zz * zz,
                        xx * xy + xy * yy + xz * yz, xx * xz + xy * yz + xz * zz, xy * xz + yy * yz + yz * zz), -1)


def _spectral_projectors(d: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Packed spectral projectors P_j = Π_{k≠j} (D − λ_k)/(λ_j − λ_k) of packed D (..., 6) → (..., 3, 6).

    Near-degenerate pairs are regularised; the sum over a degenerate pair stays accurate.
    """
    d2 = _packed_square(d)
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


def _one_of_each_pair(bonds: np.ndarray) -> np.ndarray:
    """Indices keeping one bond of each ± pair."""
    keep, seen = [], set()
    for i, v in enumerate(np.round(bonds * 2).astype(int)):
        key = tuple(v)
        if tuple(-v) in seen:
            continue
        seen.add(key)
        keep.append(i)
    return np.array(keep)
