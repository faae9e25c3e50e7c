"""Physical constants and unit conversions.

Energies are in meV, wavevectors in 1/Å, lengths in Å, masses in atomic mass units (u),
force constants in N/m, temperatures in K.

Material data (masses, constants, names, a(T)) live in :mod:`phonon_ml_core.specs`, never here.
"""
from __future__ import annotations

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
