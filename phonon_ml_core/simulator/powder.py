"""Batched, differentiable powder INS simulator: χ''(|Q|,E) or S(|Q|,E) of a monatomic cubic BvK crystal.

Physics (per atom, S in 1/meV, in units of the total bound cross-section σ_tot/4π = (σ_coh + σ_inc)/4π):

* coherent one-phonon scattering (weight σ_coh/σ_tot), powder averaged over directions of Q:
  S₁(Q,E) = e^{−2W} (ħ²/2M) Σ_j |Q·e_j|²/E_j [(n_j+1) δ(E−E_j) + n_j δ(E+E_j)] (:mod:`.one_phonon`);
* incoherent one-phonon scattering (weight σ_inc/σ_tot) from the density of states (:mod:`.incoherent`);
* Debye–Waller factor 2W = Q² ⟨u_x²⟩ from the model's own phonons at temperature T;
* multiphonon orders n ≥ 2 from the total scattering, incoherent approximation, from the model's DOS;
* optional intrinsic linewidth: damped-harmonic-oscillator line shape with HWHM Γ = γ·E_j;
* instrumental energy resolution of the experiment (resins, PyChop model), averaging over |Q| and E bins;
* χ'' = π (1 − e^{−E/k_BT}) S (Mantid's ApplyDetailedBalance), NaN outside coverage, mean
  normalisation on the valid pixels.

A simulator is built for a :class:`~phonon_ml_core.specs.Material` (lattice, shells, mass, scattering, a(T))
and an :class:`~phonon_ml_core.specs.Experiment` (instrument, chopper, Ei, grid and mask):
:meth:`PowderSimulator.from_specs`, or the cached :func:`phonon_ml_core.simulator.factory.get_simulator`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.physics.bvk import BvKModel, bz_sample
from phonon_ml_core.physics.units import FC_TO_MEV2, HBAR2_OVER_2MN_MEV_A2, KB_MEV_PER_K, NEUTRON_MASS_U
from phonon_ml_core.physics.eigen3 import PACKED, eigvalsh3
from phonon_ml_core.simulator.incoherent import bin_q2_weight, incoherent_density, multiphonon
from phonon_ml_core.simulator.mesh import TRACE_WEIGHTS, irreducible_cube_points, shell_mesh
from phonon_ml_core.simulator.one_phonon import (
    ShellTensors,
    contiguous_cells,
    dho_broaden,
    one_of_each_pair,
    one_phonon_mesh,
    one_phonon_sphere,
)
from phonon_ml_core.simulator.quadrature import powder_quadrature
from phonon_ml_core.simulator.kernels import binned_gaussian_kernel
from phonon_ml_core.simulator.settings import (
    LAM_FLOOR,
    SimulationInputs,
    SimulationSettings,
    UnstableForceConstantsError,
)
from phonon_ml_core.simulator.specs_setup import resolve_specs, scattering_weights
from phonon_ml_core.simulator.thermal import mean_square_displacement
from phonon_ml_core.specs import Experiment, Material

__all__ = ["PowderSimulator", "SimulationInputs", "SimulationSettings", "UnstableForceConstantsError"]


class PowderSimulator(torch.nn.Module):
    """Simulate powder spectra on a grid for batches of force constants.

    Prefer :meth:`from_specs` (a material and an experiment). The keyword form below is kept for existing
    callers: without ``material`` and ``model`` the material is aluminium (``specs.ALUMINIUM``, a(T) from it), the
    same physics as passing it (incoherent term included unless ``settings.incoherent`` is off); a bare ``model``
    (no material) is purely coherent with the model's constant lattice parameter unless ``lattice_parameter`` is
    given; without ``experiment`` the
    experiment is the standard one's instrument and chopper (or the legacy settings fields) at the grid's Ei.

    Args:
        grid: target grid (default: the experiment's; the standard ARCS Ei = 50 meV grid).
        model: template BvK model giving lattice type, shells, mass (its constants are ignored).
        settings: numerical settings.
        lattice_parameter: Å, or a function of temperature (K → Å) (default: the material's a(T)).
        dtype, device: torch dtype (float32 default) and device.
        material, experiment: the specs (see above).
    """

    def __init__(self, grid: Grid | None = None, model: BvKModel | None = None,
                 settings: SimulationSettings | None = None,
                 lattice_parameter: float | Callable[[np.ndarray], np.ndarray] | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", *,
                 material: Material | None = None, experiment: Experiment | None = None):
        super().__init__()
        settings = SimulationSettings() if settings is None else settings
        if settings.quantity not in ("chi''", "S"):
            raise ValueError(f"quantity must be \"chi''\" or \"S\", got {settings.quantity!r}")
        if settings.method not in ("mesh", "sphere"):
            raise ValueError(f"unknown powder-average method {settings.method!r}: choose 'mesh' or 'sphere'")
        self.material, self.model, self.experiment = resolve_specs(material, model, experiment, grid, settings)
        self.weights = scattering_weights(self.material, settings)
        self.settings = replace(settings, incoherent=self.weights[1] > 0)  # the resolved switch, for provenance
        self.grid = self.experiment.grid
        if lattice_parameter is None:
            lattice_parameter = (self.material.lattice_parameter_at if self.material is not None
                                 else self.model.lattice_parameter)
        self.lattice_parameter_of_t = lattice_parameter
        self.dtype, self.device = dtype, torch.device(device)
        self.resolution = self.experiment.resolution(self.settings.resolution_scale)
        self._build()

    @classmethod
    def from_specs(cls, material: Material | str | None = None, experiment: Experiment | None = None,
                   settings: SimulationSettings | None = None, quantity: str | None = None,
                   dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                   grid: Grid | None = None) -> PowderSimulator:
        """A simulator for ``material`` (a Material or a built-in symbol; default aluminium) and ``experiment``
        (default the standard ARCS one). ``quantity`` ("chi''" or "S") overrides the settings'; ``grid`` replaces
        the experiment's grid (same Ei)."""
        from phonon_ml_core.specs import ALUMINIUM, get_material

        material = ALUMINIUM if material is None else get_material(material)
        st = SimulationSettings() if settings is None else replace(settings)
        if quantity is not None:
            st.quantity = quantity
        return cls(grid=grid, settings=st, dtype=dtype, device=device, material=material, experiment=experiment)

    # ------------------------------------------------------------------ set-up
    @property
    def names(self) -> tuple[str, ...]:
        """Names of the force constants, in input order (from the material, or the model's shells)."""
        return self.material.names if self.material is not None else self.model.names

    @property
    def n_constants(self) -> int:
        return len(self.names)

    def _t(self, x) -> torch.Tensor:
        return torch.as_tensor(np.array(x), dtype=self.dtype, device=self.device)

    def _buffer(self, name: str, value) -> None:
        tensor = value if isinstance(value, torch.Tensor) else self._t(value)
        self.register_buffer(name, tensor, persistent=False)

    def _build(self) -> None:
        s, g = self.settings, self.grid
        h = s.energy_step
        self.recoil = HBAR2_OVER_2MN_MEV_A2 * NEUTRON_MASS_U / self.model.mass  # ħ²/2M, meV Å²
        self.lam_scale = FC_TO_MEV2 / self.model.mass  # N/m → meV²
        self.q_bins = np.where(g.mask.any(axis=0))[0]  # |Q| bins with coverage
        bonds = self.model.bond_vectors / self.model.lattice_parameter  # units of a
        keep = one_of_each_pair(bonds)
        basis6 = np.stack([self.model.bond_basis[keep][..., i, j] for i, j in PACKED], -1)  # (L/2, K, 6)
        self._buffer("basis6", 2.0 * basis6)
        if s.method == "sphere":
            quad = powder_quadrature(g.q_edges, self.q_bins, s.n_per_bin, s.quadrature_seed)
            self._buffer("q_vec", quad.q_vectors)
            self._buffer("q_dot_r", quad.q_vectors @ bonds[keep].T)
            self._buffer("q2_points", (quad.q_vectors ** 2).sum(1))
            self._buffer("bin_of_point", torch.as_tensor(quad.bin_index, device=self.device))
        else:
            a0 = float(self.model.lattice_parameter)
            a_range = (0.9 * a0, 1.1 * a0)
            lo = max(g.q_edges[self.q_bins[0]], 0.0) * a_range[0] / (2 * np.pi)
            hi = g.q_edges[self.q_bins[-1] + 1] * a_range[1] / (2 * np.pi)
            self.mesh = shell_mesh(s.mesh_density, float(lo), float(hi))
            self._buffer("mesh_phase", 1.0 - np.cos(2 * np.pi * self.mesh.q @ bonds[keep].T))
            self._buffer("trace_w", TRACE_WEIGHTS)
            self.shells = ShellTensors(self.mesh, g.q_edges, self.q_bins, a_range, self.dtype, self.device)
        # Brillouin-zone sample (phases are independent of a) for ⟨u²⟩ and the multiphonon DOS
        bz = bz_sample(self.model.lattice, 1.0, s.bz_grid)
        self._buffer("bz_phase", 1.0 - np.cos(bz @ bonds[keep].T))
        if self.weights[1] > 0:  # irreducible uniform sample for the incoherent one-phonon DOS
            q_dos, w_dos = irreducible_cube_points(s.dos_grid)
            self._buffer("dos_phase", 1.0 - np.cos(2 * np.pi * q_dos @ bonds[keep].T))
            self._buffer("dos_weight", w_dos)
        # fine energy grids: F (output window, ±(i+½)h) and G (mode energies, (i+½)h ≥ 0)
        sig_max = float(self.resolution.sigma(np.array([g.energy_edges.min(), g.energy_edges.max(), 0.0])).max())
        margin = 6 * sig_max + 4 * h
        lo, hi = g.energy_edges[0] - margin, g.energy_edges[-1] + margin
        f_idx = np.arange(math.floor(lo / h - 0.5), math.ceil(hi / h - 0.5) + 1)
        fine = (f_idx + 0.5) * h
        fine = fine[np.abs(fine) < g.ei_mev + margin]
        self.fine = fine
        self.n_g = math.ceil((1.5 * np.abs(fine).max() + 5.0) / h)
        self.g_energy = (np.arange(self.n_g) + 0.5) * h
        g_index = np.round(np.abs(fine) / h - 0.5).astype(int)
        self._buffer("f_from_g", torch.as_tensor(g_index, device=self.device))
        self._buffer("f_sign", np.sign(fine))
        self._buffer("fine_t", fine)
        self._buffer("g_t", self.g_energy)
        edges, f_cell = contiguous_cells(fine, h)  # the |E| cells of F, for the DHO linewidth
        self._buffer("edges_sq_t", edges ** 2)
        self._cells_are_window = bool(np.all(fine > 0)) and np.array_equal(f_cell, np.arange(len(fine)))
        self._buffer("f_cell_t", torch.as_tensor(f_cell, device=self.device))
        sigma = self.resolution.sigma(fine)
        self._buffer("res_kernel_t", binned_gaussian_kernel(fine, sigma, g.energy_edges).T * h)
        self._buffer("e_centres", g.energy)
        self._buffer("mask_t", torch.as_tensor(g.mask.copy(), device=self.device))
        # |Q|² samples across each bin (for the incoherent and multiphonon coefficients)
        u = (np.arange(8) + 0.5) / 8
        qlo, qhi = np.maximum(g.q_edges[self.q_bins], 0.0), g.q_edges[self.q_bins + 1]
        self._buffer("bin_q2", (qlo[:, None] + u[None] * (qhi - qlo)[:, None]) ** 2)

    # ------------------------------------------------------------------ inputs
    def prepare(self, force_constants, temperature, lattice_parameter=None, linewidth=None) -> SimulationInputs:
        """Validate and broadcast per-spectrum inputs (N/m, K, Å, γ) into tensors.

        ``linewidth``: γ per spectrum (HWHM = γ·E), or a 2-D (B or 1, 2) array of (γ0 meV, γ1) for HWHM = γ0 + γ1·E.
        """
        fc = torch.as_tensor(force_constants, dtype=self.dtype, device=self.device)
        if fc.dim() == 1:
            fc = fc[None]
        if fc.dim() != 2 or fc.shape[1] != self.n_constants:
            owner = f"{self.material.name} ({self.material.lattice}, {self.material.n_shells} shells)" \
                if self.material is not None else f"this {self.model.lattice} model"
            raise ValueError(f"expected {self.n_constants} force constants per set for {owner}, in the order "
                             f"{', '.join(self.names)} (N/m), got shape {tuple(fc.shape)}")
        if not torch.isfinite(fc).all():
            raise ValueError("force constants contain NaN or infinity: give finite values in N/m")
        b = fc.shape[0]
        t = torch.as_tensor(temperature, dtype=self.dtype, device=self.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(b)
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
            lw = torch.as_tensor(linewidth, dtype=self.dtype, device=self.device)
            lw = lw.reshape(-1, 2).expand(b, 2) if lw.dim() == 2 else lw.reshape(-1).expand(b)  # (B, 2): γ0 + γ1·E
            if not torch.isfinite(lw).all() or (lw < 0).any():
                raise ValueError("linewidth must be finite and ≥ 0: γ (HWHM = γ·E), or rows (γ0 meV, γ1) for "
                                 "HWHM = γ0 + γ1·E")
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
        unstable = lam_bz.amin(1) <= LAM_FLOOR
        e_bz = torch.sqrt(lam_bz.clamp_min(LAM_FLOOR))
        msd = mean_square_displacement(e_bz, temp, self.recoil) if (s.debye_waller or s.multiphonon) \
            else fc.new_zeros(b)
        msd_dw = msd if s.debye_waller else torch.zeros_like(msd)
        chi_g, bad = self._coherent(fc, a, msd_dw)
        unstable = unstable | bad
        if unstable.any() and not allow_unstable:
            raise UnstableForceConstantsError(torch.where(unstable)[0].cpu().numpy(), b, self.names,
                                              fc.detach().cpu().numpy())
        w_coh, w_inc = self.weights
        if w_inc > 0:
            dyn = self._squared_energies(self.dos_phase.expand(b, -1, -1), fc)
            dos = incoherent_density(dyn, self.dos_weight, self.recoil, self.n_g, s.energy_step)  # (B, n_G)
            chi_g = w_coh * chi_g + w_inc * dos[:, :, None] * bin_q2_weight(self.bin_q2, msd_dw)[:, None, :]
        elif w_coh != 1.0:
            chi_g = w_coh * chi_g
        # --- map onto the output window F (odd in E), with optional DHO linewidth; layout (B, energy, |Q| bin)
        if inp.linewidth is not None and bool((inp.linewidth > 0).any()):
            same = self._cells_are_window
            chi_f = dho_broaden(chi_g, inp.linewidth, self.g_t, self.edges_sq_t, None if same else self.f_cell_t,
                                None if same else self.f_sign, s.energy_step)
        else:
            chi_f = chi_g[:, self.f_from_g, :] * self.f_sign[:, None]
        # --- S on F; + multiphonon; resolution and E-bin average
        db = math.pi * (-torch.expm1(-self.fine_t[None, :] / (KB_MEV_PER_K * temp[:, None])))  # (B, n_F)
        s_f = chi_f / db[:, :, None]
        if s.multiphonon:
            s_f = s_f + multiphonon(e_bz, temp, msd, self.recoil, self.bin_q2, self.fine, s.energy_step, s.max_order)
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

    def _coherent(self, fc: torch.Tensor, a: torch.Tensor, msd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coherent one-phonon χ'' on G (b_coh² factored out), (B, n_G, n_bins), and unstable flags (B,)."""
        s, b = self.settings, fc.shape[0]
        if s.method == "mesh":
            dyn = self._squared_energies(self.mesh_phase.expand(b, -1, -1), fc)
            return one_phonon_mesh(dyn, a, msd, self.shells, self.trace_w, self.recoil, self.n_g, s.energy_step)
        phase = 1.0 - torch.cos(a[:, None, None] * self.q_dot_r[None])  # (B, P, L/2)
        dyn = self._squared_energies(phase, fc)
        return one_phonon_sphere(dyn, self.q_vec, self.q2_points, self.bin_of_point, len(self.q_bins), msd,
                                 self.recoil, s.n_per_bin, self.n_g, s.energy_step)

    # ------------------------------------------------------------------ convenience
    def describe(self) -> dict:
        """Settings, specs, scattering weights, resolution and grid, for provenance."""
        return {"settings": self.settings.to_dict(), "resolution": self.resolution.to_dict(),
                "material": None if self.material is None else self.material.name,
                "scattering_weights": {"coherent_one_phonon": self.weights[0],
                                       "incoherent_one_phonon": self.weights[1]},
                "model": {"lattice": self.model.lattice, "n_shells": self.model.n_shells,
                          "mass_u": self.model.mass, "constants": list(self.names)},
                "grid": {k: v for k, v in self.grid.to_dict().items() if k not in ("q", "energy")}}

