"""Settings, per-batch inputs and errors of the powder simulator."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only in annotations: ``phonon-ml simulate --help`` reads the defaults without it
    import torch

#: Squared mode energies (meV²) at or below this count as unstable.
LAM_FLOOR = 1e-6


class UnstableForceConstantsError(ValueError):
    """Raised for force constants with imaginary phonon frequencies (names the sets and the constants)."""

    def __init__(self, indices: np.ndarray, n_total: int, names: tuple[str, ...] = (),
                 force_constants: np.ndarray | None = None):
        self.indices = np.asarray(indices)
        shown = ""
        if force_constants is not None and len(self.indices) and names:
            first = np.asarray(force_constants)[int(self.indices[0])]
            shown = " (set {}: {})".format(int(self.indices[0]),
                                           ", ".join(f"{n}={v:.4g}" for n, v in zip(names, first)))
        super().__init__(f"{len(self.indices)} of {n_total} force-constant sets are dynamically unstable (imaginary "
                         f"frequencies), e.g. set(s) {self.indices[:5].tolist()}{shown}: check the signs and "
                         "magnitudes of the constants (for fcc, 1XX and 1XX + 1ZZ must be positive) or sample a "
                         "narrower range around the material's reference")


@dataclass
class SimulationSettings:
    """Numerical and physical switches of the simulator (the material and the experiment are separate).

    Attributes:
        method: "mesh" (uniform reciprocal-space grid, eigenproblems in the irreducible 1/48 wedge; fast)
            or "sphere" (scrambled-Sobol |Q| × direction points per bin; an independent cross-check).
        mesh_density: grid points per 2π/a along each axis for "mesh".
        n_per_bin: points per |Q| bin for "sphere".
        energy_step: fine energy grid spacing, meV (≪ resolution σ).
        debye_waller: include e^{−2W}.
        multiphonon: include orders ≥ 2 (incoherent approximation, total cross-section).
        incoherent: include the incoherent one-phonon term (weight σ_inc/σ_tot; default on, for every material,
            aluminium included). A bare model (no material, hence no cross-sections) is coherent only; the
            simulator records the resolved value.
        max_order: highest multiphonon order (fewer are used when they are negligible).
        bz_grid: n for the n³ Brillouin-zone sampling of ⟨u²⟩ and the multiphonon density of states.
        dos_grid: points per 2π/a of the uniform reciprocal-space sampling (irreducible wedge) of the density
            of states of the incoherent one-phonon term.
        quantity: "chi''" or "S".
        normalize: mean-normalise on the valid pixels (conventions §3).
        resolution_scale: multiplies the instrumental σ (0 = no instrumental broadening).
        instrument, chopper_package, chopper_frequency: legacy; None (default) = the experiment's. When set
            without an experiment they choose the resolution; with an experiment they must agree with it.
        quadrature_seed: seed of the (deterministic) scrambled Sobol sequence.
    """

    method: str = "mesh"
    mesh_density: int = 16
    n_per_bin: int = 1024
    energy_step: float = 0.1
    debye_waller: bool = True
    multiphonon: bool = True
    incoherent: bool = True
    max_order: int = 10
    bz_grid: int = 12
    dos_grid: int = 16
    quantity: str = "chi''"
    normalize: bool = True
    resolution_scale: float = 1.0
    instrument: str | None = None
    chopper_package: str | None = None
    chopper_frequency: int | None = None
    quadrature_seed: int = 20240521

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SimulationInputs:
    """Per-spectrum inputs as tensors of one batch (B spectra)."""

    force_constants: torch.Tensor  # (B, K) N/m
    temperature: torch.Tensor      # (B,) K
    lattice_parameter: torch.Tensor  # (B,) Å
    linewidth: torch.Tensor | None = None  # (B,) γ, HWHM = γ E; or (B, 2) (γ0 meV, γ1), HWHM = γ0 + γ1 E
