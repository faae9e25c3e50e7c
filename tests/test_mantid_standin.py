"""The stand-in is as strict as Mantid where the algorithms depend on it (issue 15 items 2-3), and the
algorithms' group path (Algorithm::processGroups) works. Each test here fails on the stand-in's old kindness."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mantid_standin.harness import ERRORS, ROOT, STANDIN, make_sqw, mantid_fixture, measured_like  # noqa: F401


def test_is_default_means_value_equals_default(mantid):
    alg = mantid.api.AlgorithmManager.create("SimulatePowderINS")
    assert alg.getProperty("Temperature").isDefault
    alg.setProperty("Temperature", 300.0)  # set, but to the default: Mantid's PropertyWithValue says default
    assert alg.getProperty("Temperature").isDefault
    alg.setProperty("Temperature", 280.0)
    assert not alg.getProperty("Temperature").isDefault
    alg.setProperty("ForceConstants", [])
    assert alg.getProperty("ForceConstants").isDefault


def test_is_valid_is_an_attribute_and_bounds_have_no_empty_exemption(mantid):
    k = mantid.kernel
    alg = mantid.api.AlgorithmManager.create("SimulatePowderINS")
    assert alg.getProperty("Temperature").isValid == ""  # a str attribute, not a method
    with pytest.raises(TypeError):
        alg.getProperty("Temperature").isValid()
    upper = k.FloatBoundedValidator(upper=10.0)
    assert upper.check(k.Property.EMPTY_DBL) != ""  # no EMPTY_DBL exemption (BoundedValidator.h)
    assert k.IntBoundedValidator(upper=10).check(k.Property.EMPTY_INT) != ""


def test_workspace_api_as_mantid(mantid):
    y, ee, qe = measured_like()
    ws = make_sqw(mantid, "api_ws", y, ee, qe)
    assert not hasattr(ws, "x") and not hasattr(ws, "y")  # readX/readY/extractY only
    assert ws.readY(0).shape == (ee.size - 1,)
    alg = mantid.api.AlgorithmManager.create("SimulatePowderINS")
    progress = mantid.api.Progress(alg, 0.0, 1.0, 2)
    with pytest.raises(TypeError):
        progress.reportIncrement(1)  # the message is required (ProgressBase.cpp)
    progress.reportIncrement(1, "step")
    arr = mantid.kernel.StringArrayProperty("Names", ["a", "b"])
    assert arr.value == ["a", "b"] and isinstance(arr.value, list)


def test_add_sample_log_as_mantid(mantid):
    y, ee, qe = measured_like()
    make_sqw(mantid, "logs_ws", y, ee, qe, temperature=None)
    s = mantid.sapi
    s.AddSampleLog(Workspace="logs_ws", LogName="SampleTemp", LogText="300.0 302.0", LogType="Number Series")
    run = mantid.api.mtd["logs_ws"].getRun()
    np.testing.assert_array_equal(run.getProperty("SampleTemp").value, [300.0])  # one entry, up to the space
    s.AddSampleLog(Workspace="logs_ws", LogName="N", LogText="50", LogType="Number")
    assert run.getProperty("N").value == 50 and isinstance(run.getProperty("N").value, int)
    from phonon_ml_core.mantid_support.logs import sample_temperature

    assert sample_temperature(mantid.api.mtd["logs_ws"]) == ("SampleTemp", 300.0)


def test_validate_inputs_worded_as_mantid(mantid):
    y, ee, qe = measured_like()
    make_sqw(mantid, "noei_ws", y, ee, qe, ei=None, temperature=None)
    with pytest.raises(RuntimeError) as info:
        mantid.sapi.PreprocessForML(InputWorkspace="noei_ws", OutputWorkspace="o")
    msg = str(info.value)
    assert msg.startswith("Some invalid Properties found: \n Ei: the workspace has no Ei log")
    assert msg.index("\n Ei:") < msg.index("\n Temperature:")  # std::map order


def test_sns_temperature_logs(mantid):
    from phonon_ml_core.mantid_support.logs import TEMPERATURE_LOGS, sample_temperature

    y, ee, qe = measured_like()
    for name in ("SampleTemp", "sampletemp", "SensorA", "SensorB", "SensorC", "temp5", "temp8"):
        assert name in TEMPERATURE_LOGS
        make_sqw(mantid, f"t_{name}", y, ee, qe, temperature=None)
        mantid.sapi.AddSampleLog(Workspace=f"t_{name}", LogName=name, LogText="123.5", LogType="Number")
        assert sample_temperature(mantid.api.mtd[f"t_{name}"]) == (name, 123.5)


def test_preprocess_group_member_by_member(mantid):
    y, ee, qe = measured_like()
    make_sqw(mantid, "run_a", y, ee, qe, temperature=300.0)
    make_sqw(mantid, "run_b", measured_like(seed=1)[0], ee, qe, temperature=50.0)
    mantid.sapi.GroupWorkspaces(InputWorkspaces="run_a,run_b", OutputWorkspace="runs")
    out = mantid.sapi.PreprocessForML(InputWorkspace="runs", OutputWorkspace="ready")
    assert out.getNames() == ["run_a_ready", "run_b_ready"]  # Algorithm::processGroups naming
    for member in ("run_a", "run_b"):
        single = mantid.sapi.PreprocessForML(InputWorkspace=member, OutputWorkspace=f"{member}_single")
        np.testing.assert_array_equal(mantid.api.mtd[f"{member}_ready"].extractY(), single.extractY())
    # members named "<group>_<i>": the outputs are "<out>_<i>"
    make_sqw(mantid, "g_1", y, ee, qe)
    make_sqw(mantid, "g_2", y, ee, qe, ei=None)
    mantid.sapi.GroupWorkspaces(InputWorkspaces="g_1,g_2", OutputWorkspace="g")
    with pytest.raises(RuntimeError, match="Execution of PreprocessForML for group entry 2 failed: Some invalid "
                                           "Properties found"):
        mantid.sapi.PreprocessForML(InputWorkspace="g", OutputWorkspace="gout")
    assert mantid.api.mtd.doesExist("gout_1")


def test_fit_group_gives_a_group_of_tables(mantid):
    from phonon_ml_core.specs.grid import Grid
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.simulator import simulate_spectrum

    g = Grid.from_axes(np.linspace(1.5, 4.5, 5), np.linspace(12.0, 36.0, 5), ei_mev=50.0)
    for i, t in enumerate((100.0, 300.0)):
        mantid.api.mtd.addOrReplace(f"fit_{i}", spectrum_to_workspace(simulate_spectrum([10.0, 10.8, -2.5, 2.1, 0.1], t,
                                                                                        grid=g)))
    mantid.sapi.GroupWorkspaces(InputWorkspaces="fit_0,fit_1", OutputWorkspace="fits")
    tables = mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="fits", MaxEvaluations=8, FitLinewidth=False,
                                                     FitBackground=False, OutputWorkspace="fc")
    assert tables.getNames() == ["fit_0_fc", "fit_1_fc"]
    for name, t in zip(tables.getNames(), (100.0, 300.0)):
        table = mantid.api.mtd[name]
        assert table.column("Name") == ["1XX", "1XY", "1ZZ", "2XX", "2YY"]
        assert table.column("Temperature")[0] == t


def test_distribution_flag_honoured(mantid):
    """Counts per bin (not a distribution) on unequal energy bins are densities once divided by the widths."""
    y, ee, qe = measured_like()
    ee2 = np.concatenate([ee[:40], ee[40::2]])  # coarser bins above 24 meV
    y2 = np.concatenate([y[:39], 0.5 * (y[39:-1:2] + y[40::2]) if (y.shape[0] - 39) % 2 == 0 else y[39::2]])
    y2 = y2[:ee2.size - 1]
    widths = np.diff(ee2)[:, None]
    make_sqw(mantid, "dens", y2, ee2, qe)
    mantid.api.mtd["dens"].setDistribution(True)
    make_sqw(mantid, "counts", y2 * widths, ee2, qe)
    a = mantid.sapi.PreprocessForML(InputWorkspace="dens", OutputWorkspace="dens_ready")
    b = mantid.sapi.PreprocessForML(InputWorkspace="counts", OutputWorkspace="counts_ready")
    np.testing.assert_allclose(a.extractY(), b.extractY(), rtol=1e-9, atol=1e-12, equal_nan=True)
    assert a.isDistribution() and b.isDistribution()


def test_registration_and_dialogs_do_not_import_torch():
    code = (f"import sys; sys.path.insert(0, {str(STANDIN)!r}); import phonon_ml_core.mantid_plugins as p; "
            "import mantid.api as api; assert p.REGISTERED; "
            "[api.AlgorithmManager.create(n) for n in p.REGISTERED]; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_train_expands_groups_of_measured_workspaces(mantid, tmp_path):
    """TrainPhononVAE takes names (a StringArrayProperty, values a list) and expands groups itself
    (checkGroups() is false): a bad member is named."""
    y, ee, qe = measured_like()
    make_sqw(mantid, "tm_good", y, ee, qe)
    make_sqw(mantid, "tm_tof", y, ee, qe, x_unit="TOF")
    mantid.sapi.GroupWorkspaces(InputWorkspaces="tm_good,tm_tof", OutputWorkspace="tm_group")
    data = tmp_path / "set.h5"
    data.write_bytes(b"")
    alg = mantid.api.AlgorithmManager.create("TrainPhononVAE")
    alg.setProperty("MeasuredWorkspaces", "tm_group")
    assert alg.getProperty("MeasuredWorkspaces").value == ["tm_group"]
    with pytest.raises(ERRORS, match="MeasuredWorkspaces: tm_tof: the X unit is 'TOF'"):
        mantid.sapi.TrainPhononVAE(SimulatedData=str(data), MeasuredWorkspaces="tm_group",
                                   OutputBundle=str(tmp_path / "b"))
