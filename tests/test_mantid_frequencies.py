"""Item 8 of issue 15 (second table): PredictForceConstants and FitForceConstantsNelderMead write the zone-boundary
frequencies (THz) with their uncertainties to an optional OutputFrequencies table, the numbers of RESULT.json
(phonon_ml_core.fitting.frequencies)."""
from __future__ import annotations

import numpy as np

from mantid_standin.harness import mantid_fixture, tiny_grid  # noqa: F401
from test_mantid_plugins import tiny_bundle, tiny_dataset  # noqa: F401

COLUMNS = ["Input", "Index", "Point", "Branch", "Frequency", "Std", "Units"]


def _check_against(table, fields, input_name, index=0, start=0):
    rows = [(p, b + 1, f, s) for p in fields["frequency_points"]
            for b, (f, s) in enumerate(zip(fields["frequencies_thz"][p],
                                           (fields["frequencies_std_thz"] or {}).get(p) or [None] * 3))]
    got = slice(start, start + len(rows))
    assert table.column("Input")[got] == [input_name] * len(rows)
    assert table.column("Index")[got] == [index] * len(rows)
    assert table.column("Point")[got] == [r[0] for r in rows]
    assert table.column("Branch")[got] == [r[1] for r in rows]
    np.testing.assert_allclose(table.column("Frequency")[got], [r[2] for r in rows], rtol=1e-9)
    np.testing.assert_allclose(table.column("Std")[got], [np.nan if r[3] is None else r[3] for r in rows],
                               rtol=1e-6, equal_nan=True)
    assert set(table.column("Units")[got]) == {"THz"}
    return len(rows)


def test_frequencies_table_layout(mantid):
    from phonon_ml_core.fitting.frequencies import frequency_fields
    from phonon_ml_core.mantid_support.tables import frequencies_table
    from phonon_ml_core.specs import ALUMINIUM

    fc = np.asarray(ALUMINIUM.reference_constants, dtype=float)
    with_std = {"input": "a", "index": 0, **frequency_fields(ALUMINIUM, fc, std=0.1 * np.abs(fc))}
    without = {"input": "b", "index": 1, **frequency_fields(ALUMINIUM, fc)}
    table = frequencies_table([with_std, without])
    assert table.getColumnNames() == COLUMNS
    assert table.rowCount() == 12  # fcc: X and L, three branches each, for two inputs
    n = _check_against(table, with_std, "a")
    _check_against(table, without, "b", index=1, start=n)
    assert np.all(np.isnan(table.column("Std")[n:]))
    assert np.all(np.array(table.column("Std")[:n]) > 0)


def test_fit_writes_frequencies(mantid):
    from phonon_ml_core.fitting.frequencies import frequency_fields
    from phonon_ml_core.fitting.spectrum_fit import fit_spectrum
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace, workspace_to_spectrum
    from phonon_ml_core.simulator import simulate_spectrum
    from phonon_ml_core.specs import ALUMINIUM

    truth = np.array([10.0, 10.8, -2.5, 2.1, 0.1])
    mantid.api.mtd.addOrReplace("fq_tiny", spectrum_to_workspace(simulate_spectrum(truth, 300.0, grid=tiny_grid())))
    table, freq = mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="fq_tiny", MaxEvaluations=15,
                                                          OutputWorkspace="fq_fit", OutputFrequencies="fq_freq")
    assert freq.getColumnNames() == COLUMNS and freq.rowCount() == 6
    assert mantid.api.mtd.doesExist("fq_freq")
    ref = fit_spectrum(workspace_to_spectrum(mantid.api.mtd["fq_tiny"]), max_evaluations=15, fit_linewidth=True,
                       fit_background=True)
    result = ref.to_dict()  # RESULT.json's entries, covariance propagated
    _check_against(freq, result, "fq_tiny")
    np.testing.assert_allclose(freq.column("Frequency"),
                               np.ravel([frequency_fields(ALUMINIUM, table.column("Value"))["frequencies_thz"][p]
                                         for p in ("X", "L")]), rtol=1e-9)
    single = mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="fq_tiny", MaxEvaluations=5,
                                                     OutputWorkspace="fq_fit2")
    assert single.getColumnNames()[:3] == ["Input", "Index", "Name"]  # optional: not asked for, not returned


def test_predict_writes_frequencies(mantid, tiny_dataset, tiny_bundle):  # noqa: F811
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.fitting.frequencies import frequency_fields
    from phonon_ml_core.learn.bundle import load_bundle
    from phonon_ml_core.mantid_support.adapter import bundle_grid_description, spectrum_to_workspace

    data = Spectrum.from_hdf5(tiny_dataset)
    for i in (0, 1):
        mantid.api.mtd.addOrReplace(f"fq_p{i}", spectrum_to_workspace(data[i]))
    table, freq = mantid.sapi.PredictForceConstants(InputWorkspace="fq_p0", ModelBundle=str(tiny_bundle),
                                                    NumberOfSamples=64, ComputeNMSE=False, OutputWorkspace="fq_pred",
                                                    OutputFrequencies="fq_pfreq")
    bundle = load_bundle(tiny_bundle)
    ref = bundle.predict(data[0], n_samples=64, seed=0)
    material = bundle_grid_description(tiny_bundle)["material"]  # the material the plugin predicts for
    fields = frequency_fields(material, ref["mean"], std=ref["std"])
    assert freq.getColumnNames() == COLUMNS and freq.rowCount() == 6
    assert np.all(np.array(freq.column("Std")) > 0)
    np.testing.assert_allclose(freq.column("Frequency"),
                               np.ravel([fields["frequencies_thz"][p] for p in ("X", "L")]), rtol=1e-4)
    np.testing.assert_allclose(freq.column("Std"),
                               np.ravel([fields["frequencies_std_thz"][p] for p in ("X", "L")]), rtol=1e-3)
    mantid.sapi.GroupWorkspaces(InputWorkspaces="fq_p0,fq_p1", OutputWorkspace="fq_pg")
    _, gfreq = mantid.sapi.PredictForceConstants(InputWorkspace="fq_pg", ModelBundle=str(tiny_bundle),
                                                 NumberOfSamples=64, ComputeNMSE=False, OutputWorkspace="fq_predg",
                                                 OutputFrequencies="fq_gfreq")
    assert gfreq.rowCount() == 12 and gfreq.column("Input")[6:] == ["fq_p1"] * 6
    assert gfreq.column("Index")[6:] == [1] * 6
    np.testing.assert_allclose(gfreq.column("Frequency")[:6], freq.column("Frequency"), rtol=1e-6)
