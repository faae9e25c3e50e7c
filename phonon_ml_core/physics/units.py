"""Physical constants and unit conversions.

Energies are in meV, wavevectors in 1/Å, lengths in Å, masses in atomic mass units (u),
force constants in N/m, temperatures in K.

Material data live in :mod:`phonon_ml_core.specs` (``specs.ALUMINIUM``, built-in metals). The aluminium names
below (``AL_MASS_U``, ``AL_B_COH_FM``, ``AL_REFERENCE_FC``, ``AL_LATTICE_TABLE_K``, ``AL_LATTICE_TABLE_A``,
``aluminium_lattice_parameter``) are legacy aliases resolved from ``specs.ALUMINIUM`` on first use; new code
takes a Material instead.
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

#: Names of the fcc two-shell constants (conventions §1); any material's names: ``Material.names``.
FORCE_CONSTANT_NAMES: tuple[str, ...] = ("1XX", "1XY", "1ZZ", "2XX", "2YY")


def _legacy_aluminium(name: str):
    from phonon_ml_core.specs.material import ALUMINIUM  # lazy: the specs import this module for its constants

    table = ALUMINIUM.lattice_parameter
    values = {"AL_MASS_U": lambda: ALUMINIUM.mass_u, "AL_B_COH_FM": lambda: ALUMINIUM.b_coh_fm,
              "AL_REFERENCE_FC": lambda: np.array(ALUMINIUM.reference_constants),
              "AL_LATTICE_TABLE_K": lambda: np.array(table.temperatures_k),
              "AL_LATTICE_TABLE_A": lambda: np.array(table.values_a),
              "aluminium_lattice_parameter": lambda: ALUMINIUM.lattice_parameter_at}
    return values[name]()


_LEGACY = ("AL_MASS_U", "AL_B_COH_FM", "AL_REFERENCE_FC", "AL_LATTICE_TABLE_K", "AL_LATTICE_TABLE_A",
           "aluminium_lattice_parameter")


def __getattr__(name: str):
    if name in _LEGACY:
        return _legacy_aluminium(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
