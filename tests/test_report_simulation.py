"""`phonon-ml simulate` for any material and experiment, `phonon-ml materials`, the one float-list parser."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phonon_ml_core.cli.app import main
from phonon_ml_core.cli.parsing import parse_floats
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.report.simulation import sampling_for, simulate_for
from phonon_ml_core.simulator import SimulationSettings
from phonon_ml_core.specs import (
    ALUMINIUM,
    STANDARD_EXPERIMENT,
    Experiment,
    builtin_materials,
    default_grid,
    get_material,
)

FE_REF = "16.88,15.01,14.63,0.55"


def test_parse_floats_one_parser():
    assert parse_floats("1, 2,-3.5") == [1.0, 2.0, -3.5]
    with pytest.raises(ValueError, match=r"expected 4 force constants \(1XX, 1XY, 2XX, 2YY\), got 5"):
        parse_floats("1,2,3,4,5", 4, "force constants", names=("1XX", "1XY", "2XX", "2YY"))
    with pytest.raises(ValueError, match="comma-separated numbers"):
        parse_floats("1,a")
    with pytest.raises(ValueError, match="finite"):
        parse_floats("1,inf")
    from phonon_ml_core.cli import simulate
    assert simulate.parse_floats is parse_floats


def test_simulate_fe_on_sequoia_at_80_mev_records_material_and_experiment(tmp_path, capsys):
    out = tmp_path / "fe.h5"
    assert main(["simulate", "--material", "fe", "--instrument", "SEQUOIA", "--ei", "80", "--force-constants", FE_REF,
                 "--temperature", "300", "--output", str(out), "--mesh-density", "8"]) == 0
    s = Spectrum.from_hdf5(out)
    fe = get_material("Fe")
    assert s.material.same_as(fe) and s.names == ("1XX", "1XY", "2XX", "2YY")
    assert s.experiment.instrument == "SEQUOIA" and s.experiment.ei_mev == 80.0
    assert s.experiment.chopper_package == "ARCS-100-1.5-AST" and s.experiment.chopper_frequency == 420
    assert s.experiment.same_as(Experiment.create("SEQUOIA", ei_mev=80.0))
    assert s.grid.same_as(default_grid(80.0, "SEQUOIA"))
    np.testing.assert_allclose(s.force_constants, [16.88, 15.01, 14.63, 0.55])
    assert s.metadata["lattice_parameter"] == pytest.approx(fe.lattice_parameter_at(300.0))
    assert np.isfinite(s.intensity[s.grid.mask]).all() and not np.isfinite(s.intensity[~s.grid.mask]).any()
    # bcc closed form at H = (2π/a)(1,0,0): Mω² = 16·1XX (second shell: cos(q·r) = 1); the one-phonon band ends
    # near it, so χ'' above 1.15 E_H (multiphonon only) lies below everything in 0.5–1.0 E_H
    e_h = np.sqrt(16 * 16.88 / (fe.mass_u * 1.66053907e-27)) * 6.582119569e-13   # meV (≈ 35.5)
    profile = np.nanmean(np.where(s.grid.mask, s.intensity, np.nan), axis=1)
    band = (s.grid.energy > 0.5 * e_h) & (s.grid.energy < e_h)
    assert 34 < e_h < 37 and profile[s.grid.energy > 1.15 * e_h].max() < profile[band].min()
    assert "SEQUOIA" in capsys.readouterr().out


@pytest.mark.parametrize("material,count", [("Fe", 5), ("Cu", 4), ("W", 6)])
def test_simulate_wrong_count_names_the_constants(tmp_path, capsys, material, count):
    out = tmp_path / "bad.h5"
    fc = ",".join(["1"] * count)
    assert main(["simulate", "--material", material, "--force-constants", fc, "--temperature", "300",
                 "--output", str(out)]) == 2
    err = capsys.readouterr().err
    names = get_material(material).names
    assert f"expected {len(names)} force constants ({', '.join(names)})" in err and not out.exists()


def test_simulate_bad_instrument_and_chopper(tmp_path, capsys):
    base = ["simulate", "--material", "Cu", "--force-constants", "13,14,-0.1,-0.8,0.3", "--temperature", "300",
            "--output", str(tmp_path / "x.h5")]
    assert main([*base, "--instrument", "IN5"]) == 2
    assert "unknown instrument" in capsys.readouterr().err
    assert main([*base, "--instrument", "MERLIN", "--chopper", "Z"]) == 2
    assert "allowed" in capsys.readouterr().err
    assert main([*base, "--instrument", "LET", "--ei", "200"]) == 2
    assert "outside the range" in capsys.readouterr().err


def test_aluminium_command_records_the_standard_specs(tmp_path):
    out = tmp_path / "al.h5"
    assert main(["simulate", "--force-constants", "10.35,10.38,-2.77,2.30,-0.25", "--temperature", "300",
                 "--output", str(out), "--mesh-density", "8"]) == 0
    s = Spectrum.from_hdf5(out)
    assert s.material.same_as(ALUMINIUM) and s.experiment.same_as(STANDARD_EXPERIMENT)
    # the same numbers as the core helper with the legacy aluminium physics (material None)
    again = simulate_for(None, STANDARD_EXPERIMENT, ALUMINIUM.reference_constants, 300.0,
                         settings=SimulationSettings(mesh_density=8))
    np.testing.assert_allclose(again.intensity, s.intensity, atol=1e-6, equal_nan=True)


def test_sampling_rule_of_the_material():
    fe = get_material("Fe")
    lo, hi = sampling_for(fe).bounds(fe)
    np.testing.assert_allclose(np.stack([lo, hi], axis=1), np.asarray(fe.sampling_ranges))
    al_lo, al_hi = sampling_for(ALUMINIUM).bounds(ALUMINIUM)
    ref = np.array([10.35, 10.38, -2.77, 2.30, -0.25])           # conventions §1: 0.5–1.5 × ref, 2YY in [−1, 1]
    np.testing.assert_allclose(al_lo, [*np.minimum(0.5 * ref, 1.5 * ref)[:4], -1.0])
    np.testing.assert_allclose(al_hi, [*np.maximum(0.5 * ref, 1.5 * ref)[:4], 1.0])


def test_materials_lists_all_seventeen_metals_and_the_instruments(capsys):
    assert main(["materials"]) == 0
    text = capsys.readouterr().out
    for symbol in ("Al", "Cu", "Ni", "Ag", "Au", "Pb", "Pd", "Pt", "Fe", "Nb", "Mo", "W", "Ta", "Cr", "V", "Na", "K"):
        assert f"\n  {symbol:<3} " in text
    for inst in ("ARCS", "SEQUOIA", "CNCS", "HYSPEC", "MAPS", "MARI", "MERLIN", "LET"):
        assert f"\n  {inst:<8} " in text
    assert "a(293 K) = 4.0496 Å" in text and "Cowley" in text
    assert main(["materials", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["materials"]) == len(builtin_materials()) == 17
    fe = next(r for r in data["materials"] if r["element"] == "Fe")
    assert fe["lattice"] == "bcc" and fe["names"] == ["1XX", "1XY", "2XX", "2YY"]
    assert fe["a_293K_angstrom"] == pytest.approx(2.8665, abs=2e-3)
    arcs = next(r for r in data["instruments"] if r["instrument"] == "ARCS")
    assert arcs["chopper_package"] == "ARCS-100-1.5-AST" and arcs["chopper_frequency"] == 300
    assert main(["materials", "Nb"]) == 0
    assert "bcc" in capsys.readouterr().out
