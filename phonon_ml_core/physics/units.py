"""Physical constants and aluminium reference values (conventions §1–2).

Energies are in meV, wavevectors in 1/Å, lengths in Å, masses in atomic mass units (u),
force constants in N/m, temperatures in K.
"""
from __future__ import annotations

import numpy as np
from scipy import constants as _c

#: Boltzmann constant, meV/K.
KB_MEV_PER_K: float = _c.k / _c.e * 1e3
#: ħ²/(2 m_n) in meV·Å² (conventions §2 uses 2.0721).
HBAR2_OVER_2MN_MEV_A2: float = _c.hbar**2 / (2 * _c.m_n) / _c.e * 1e3 * 1e20
#: Neutron mass in u.
NEUTRON_MASS_U: float = _c.m_n / _c.atomic_mass
#: (ħω)² in meV² for ω² = 1 (N/m)/u, i.e. E² [meV²] = FC_TO_MEV2 · D [N/m] / M [u].
FC_TO_MEV2: float = (_c.hbar / _c.e * 1e3) ** 2 / _c.atomic_mass
#: 1 N/m expressed in eV/Å² (phonopy / euphonic force-constant unit).
N_PER_M_TO_EV_PER_A2: float = 1.0 / _c.e * 1e-20
#: meV per THz (E = h ν).
MEV_PER_THZ: float = _c.h * 1e12 / _c.e * 1e3

FORCE_CONSTANT_NAMES: tuple[str, ...] = ("1XX", "1XY", "1ZZ", "2XX", "2YY")

#: Aluminium (conventions §1).
AL_MASS_U: float = 26.9815
AL_B_COH_FM: float = 3.449
AL_REFERENCE_FC: np.ndarray = np.array([10.35, 10.38, -2.77, 2.30, -0.25])
#: Lattice parameter of Al against temperature (K → Å), conventions §1.
AL_LATTICE_TABLE_K: np.ndarray = np.array([50.0, 150.0, 280.0, 293.0, 350.0, 450.0, 540.0, 640.0])
AL_LATTICE_TABLE_A: np.ndarray = np.array([4.0329, 4.0376, 4.0483, 4.0496, 4.0547, 4.0647, 4.0745, 4.0862])


def aluminium_lattice_parameter(temperature: float | np.ndarray) -> float | np.ndarray:
    """Lattice parameter of aluminium (Å) at ``temperature`` (K).

    Piecewise-linear in the conventions' table; extrapolated linearly beyond 640 K and held
    at the 50 K value below 50 K (thermal expansion vanishes at low temperature).
    """
    t = np.asarray(temperature, dtype=float)
    a = np.interp(t, AL_LATTICE_TABLE_K, AL_LATTICE_TABLE_A)
    slope = (AL_LATTICE_TABLE_A[-1] - AL_LATTICE_TABLE_A[-2]) / (AL_LATTICE_TABLE_K[-1] - AL_LATTICE_TABLE_K[-2])
    a = np.where(t > AL_LATTICE_TABLE_K[-1], AL_LATTICE_TABLE_A[-1] + slope * (t - AL_LATTICE_TABLE_K[-1]), a)
    return float(a) if np.ndim(a) == 0 else a
