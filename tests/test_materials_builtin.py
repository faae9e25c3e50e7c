"""The built-in materials: complete, stable, closed forms of conventions §1, data from periodictable."""
from __future__ import annotations

import numpy as np
import periodictable
import pytest

from phonon_ml_core.physics.bvk import stability_check
from phonon_ml_core.physics.units import FC_TO_MEV2
from phonon_ml_core.specs import (
    builtin_materials,
    derive_builtin,
    get_material,
    sampling_rule,
)

FCC = ["Al", "Cu", "Ni", "Ag", "Au", "Pb", "Pd", "Pt"]
BCC = ["Fe", "Nb", "Mo", "W", "Ta", "Cr", "V", "Na", "K"]


def test_all_required_materials_present():
    assert set(FCC + BCC) <= set(builtin_materials())
    for el in FCC:
        assert get_material(el).lattice == "fcc"
        assert get_material(el.lower()).names == ("1XX", "1XY", "1ZZ", "2XX", "2YY")
    for el in BCC:
        assert get_material(el.upper()).lattice == "bcc"
        assert get_material(el).names == ("1XX", "1XY", "2XX", "2YY")


@pytest.mark.parametrize("el", FCC + BCC)
def test_stable_at_reference(el):
    m = get_material(el)
    model = m.bvk_model()
    assert stability_check(np.array([m.reference_constants]), model)[0]
    assert model.is_stable()
    for t in (10.0, 293.0, 600.0):
        assert 0.9 * m.lattice_parameter_at(293.0) < m.lattice_parameter_at(t) < 1.1 * m.lattice_parameter_at(293.0)


@pytest.mark.parametrize("el", FCC)
def test_fcc_closed_forms(el):
    m = get_material(el)
    model = m.bvk_model()
    xx, xy, zz, sxx, syy = m.reference_constants
    k = 2 * np.pi / model.lattice_parameter
    d = np.sort(model.energies(np.array([[0.0, k, 0.0], [k / 2, k / 2, k / 2]])) ** 2, axis=1) * m.mass_u / FC_TO_MEV2
    assert np.isclose(d[0, 2], 16 * xx) and np.allclose(d[0, :2], 8 * (xx + zz))
    lt = 4 * (2 * xx + zz - xy) + 4 * (sxx + 2 * syy)
    ll = 4 * (2 * xx + zz + 2 * xy) + 4 * (sxx + 2 * syy)
    assert np.allclose(np.sort([lt, lt, ll]), d[1])
    c = model.elastic_constants()
    a = model.lattice_parameter
    assert np.isclose(c["C11"], 40 / a * (xx + sxx)) and np.isclose(c["C12"] + c["C44"], 40 / a * xy)


@pytest.mark.parametrize("el", [e for e in FCC + BCC if e != "Al"])
def test_scattering_and_mass_from_periodictable(el):
    m = get_material(el)
    e = getattr(periodictable, el)
    assert m.mass_u == e.mass and m.b_coh_fm == e.neutron.b_c
    assert m.sigma_coh_barn == e.neutron.coherent and m.sigma_inc_barn == e.neutron.incoherent
    a_pt = e.crystal_structure["a"]  # Ashcroft & Mermin, 3 figures (Na, K at 5 K)
    assert abs(m.lattice_parameter_at(293.0) - a_pt) < (0.11 if el in ("Na", "K") else 0.02)
    assert m.sampling_ranges == sampling_rule(m.reference_constants)
    assert m.reference_source and m.notes and m.lattice_parameter.source


def test_aluminium_closed_form_numbers():
    al = get_material("Al")
    d = 16 * al.reference_constants[0]  # M ω_L²(X) = 16·1XX
    f_thz = np.sqrt(d * FC_TO_MEV2 / al.mass_u) / 4.135667696923859
    assert 9.5 < f_thz < 9.9  # literature X_L ≈ 9.6–9.8 THz


def test_stored_files_match_derivation():
    if not derive_builtin.DEFAULT_LITERATURE.exists():
        pytest.skip("bvk_literature.json (../shared/data/materials) not available")
    assert derive_builtin.main(["--check"]) == 0
