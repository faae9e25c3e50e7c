"""The Mantid algorithms on a non-aluminium material and another instrument (issue 15 item 8): bcc iron on
SEQUOIA at 80 meV — the simulation against the BvK model assembled independently, the records (material,
experiment) on the outputs, the default grid for the Ei, the names of the constants, and the refusals
(wrong count, unknown material, chopper or frequency the instrument lacks, a bundle of another material)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from mantid_standin.harness import ERRORS, ROOT, make_sqw, mantid_fixture  # noqa: F401


@pytest.fixture(scope="module")
def fe():
    from phonon_ml_core.specs import Experiment, get_material

    return get_material("Fe"), Experiment.create("SEQUOIA", 80.0)


def test_simulate_fe_on_sequoia(mantid, fe):
    from phonon_ml_core.mantid_support.adapter import workspace_experiment, workspace_material, workspace_to_spectrum
    from phonon_ml_core.physics.bvk import BvKModel
    from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings

    material, experiment = fe
    ws = mantid.sapi.SimulatePowderINS(Material="fe", Instrument="SEQUOIA", Ei=80.0, Temperature=150.0,
                                       MeshDensity=6, OutputWorkspace="fe_sim")
    g = experiment.grid
    assert ws.getNumberHistograms() == g.shape[1] and ws.blocksize() == g.shape[0]
    np.testing.assert_allclose(ws.readX(0), g.energy_edges)
    assert workspace_material(ws).same_as(material) and workspace_experiment(ws).same_as(experiment)
    assert ws.getRun().getProperty("LatticeParameter").value == pytest.approx(material.lattice_parameter_at(150.0),
                                                                               rel=1e-6)
    # the same physics assembled independently from the BvK model (bcc, iron's mass, a(T), SEQUOIA resolution)
    model = BvKModel(force_constants=np.asarray(material.reference_constants), lattice_parameter=material.
                     lattice_parameter_at(150.0), mass=material.mass_u, lattice="bcc", n_shells=2)
    sim = PowderSimulator(grid=g, model=model, lattice_parameter=material.lattice_parameter_at,
                          settings=SimulationSettings(mesh_density=6, instrument="SEQUOIA",
                                                      chopper_package=experiment.chopper_package,
                                                      chopper_frequency=experiment.chopper_frequency))
    import torch

    with torch.no_grad():
        ref = sim(np.asarray(material.reference_constants)[None], 150.0)[0].numpy()
    np.testing.assert_allclose(ws.extractY(), np.where(g.mask, ref, np.nan).T, rtol=1e-6, atol=1e-9, equal_nan=True)
    back = workspace_to_spectrum(ws)
    assert back.material.same_as(material) and back.names == ("1XX", "1XY", "2XX", "2YY")


def test_simulate_refuses_bad_specs(mantid):
    with pytest.raises(ERRORS, match=r"Fe: .*1XX.*1XY.*2XX.*2YY|has 4 constants \(1XX, 1XY, 2XX, 2YY\)"):
        mantid.sapi.SimulatePowderINS(Material="Fe", ForceConstants=[1.0, 2.0, 3.0, 4.0, 5.0], OutputWorkspace="bad")
    with pytest.raises(ERRORS, match="unknown material 'Xx'.*Fe"):
        mantid.sapi.SimulatePowderINS(Material="Xx", OutputWorkspace="bad")
    with pytest.raises(ERRORS, match="not a chopper package of SEQUOIA.*SEQ-100-2.0-AST"):
        mantid.sapi.SimulatePowderINS(Instrument="SEQUOIA", Ei=80.0, ChopperPackage="G",
                                      OutputWorkspace="bad")
    with pytest.raises(ERRORS, match="ChopperFrequency.*allowed"):
        mantid.sapi.SimulatePowderINS(ChopperFrequency=77, OutputWorkspace="bad")
    with pytest.raises(ValueError, match="Instrument"):
        mantid.sapi.SimulatePowderINS(Instrument="IN4", OutputWorkspace="bad")
    assert not mantid.api.mtd.doesExist("bad")


def _fe_measured(fe, name, mantid, temperature=150.0):
    """Iron S(|Q|,E) simulated on a finer grid than the default one, laid out like SofQW output."""
    from phonon_ml_core.specs.grid import Grid
    from phonon_ml_core.mantid_support.simulation import simulate_for
    from phonon_ml_core.specs import Experiment

    material, experiment = fe
    g = experiment.grid
    fine = Grid.from_axes(np.arange(g.q_edges[0] + 0.05, g.q_edges[-1], 0.1), np.arange(g.energy_edges[0] + 0.25,
                          g.energy_edges[-1], 0.5), ei_mev=80.0, two_theta_deg=g.two_theta_deg)
    exp = Experiment.create("SEQUOIA", 80.0, grid=fine)
    s = simulate_for(material, exp, material.reference_constants, temperature,
                     {"mesh_density": 6, "quantity": "S", "normalize": False})
    y = s.masked().intensity
    return make_sqw(mantid, name, y, fine.energy_edges, fine.q_edges, ei=80.0, temperature=temperature)


def test_preprocess_fe_records_material_and_default_grid(mantid, fe):
    from phonon_ml_core.mantid_support.adapter import workspace_experiment, workspace_material

    material, experiment = fe
    _fe_measured(fe, "fe_raw", mantid)
    _fe_measured(fe, "fe_raw2", mantid, temperature=300.0)
    mantid.sapi.GroupWorkspaces(InputWorkspaces="fe_raw,fe_raw2", OutputWorkspace="fe_runs")
    out = mantid.sapi.PreprocessForML(InputWorkspace="fe_runs", Material="Fe", Instrument="SEQUOIA",
                                      OutputWorkspace="fe_ready")
    for name in out.getNames():
        ws = mantid.api.mtd[name]
        assert workspace_material(ws).same_as(material)
        rec = workspace_experiment(ws)
        assert rec.instrument == "SEQUOIA" and rec.grid.same_as(experiment.grid)
        assert ws.getNumberHistograms() == experiment.grid.shape[1]
    # the shipped aluminium bundle refuses iron data
    with pytest.raises(ERRORS, match=r"is for Al \(fcc.*but the input is Fe \(bcc"):
        mantid.sapi.PreprocessForML(InputWorkspace="fe_raw", Material="Fe", Instrument="SEQUOIA",
                                    ModelBundle=str(ROOT / "models" / "al_arcs_ei50_fcvae"), OutputWorkspace="x")


def test_predict_refuses_a_bundle_of_another_material(mantid, fe):
    from phonon_ml_core.specs.grid import standard_grid
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace

    material, _ = fe
    g = standard_grid()
    ws = spectrum_to_workspace(Spectrum(intensity=np.random.default_rng(0).random(g.shape), grid=g,
                                        temperature=300.0), material=material)
    mantid.api.mtd.addOrReplace("fe_std", ws)
    with pytest.raises(ERRORS, match="Material: the model bundle .* is for Al "):
        mantid.sapi.PredictForceConstants(InputWorkspace="fe_std", OutputWorkspace="x",
                                          ModelBundle=str(ROOT / "models" / "al_arcs_ei50_fcvae"))
    assert not mantid.api.mtd.doesExist("x")


def test_fit_fe_names_from_the_material(mantid, fe):
    from phonon_ml_core.fitting.spectrum_fit import fit_spectrum

    if "material" not in inspect.signature(fit_spectrum).parameters:
        pytest.skip("the core fit is aluminium-only until fit_spectrum(material=...) lands (fit area)")
    from phonon_ml_core.specs.grid import Grid
    from phonon_ml_core.mantid_support.simulation import simulate_for
    from phonon_ml_core.specs import Experiment
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace

    material, _ = fe
    g = Grid.from_axes(np.linspace(2.0, 6.0, 6), np.linspace(20.0, 60.0, 6), ei_mev=80.0)
    exp = Experiment.create("SEQUOIA", 80.0, grid=g)
    s = simulate_for(material, exp, material.reference_constants, 150.0, {"mesh_density": 6})
    mantid.api.mtd.addOrReplace("fe_small", spectrum_to_workspace(s))
    table = mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="fe_small", MaxEvaluations=10, FitLinewidth=False,
                                                    FitBackground=False, OutputWorkspace="fe_fit")
    assert table.column("Name") == list(material.names)
