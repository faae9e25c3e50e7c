"""examples/autoreduce_arcs_phonon.py, the SNS post-processing step, end to end on the stand-in: a simulated
reduced SofQW NeXus file in, result JSON/CSV, summary PNG and an experiment-log row out; errors never escape."""
from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import pytest

from mantid_standin.harness import ROOT, mantid_fixture, measured_like  # noqa: F401


@pytest.fixture(scope="module")
def autoreduce():
    path = ROOT / "examples" / "autoreduce_arcs_phonon.py"
    spec = importlib.util.spec_from_file_location("autoreduce_arcs_phonon", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_autoreduce_predicts_from_the_reduced_file(mantid, autoreduce, tmp_path):
    from phonon_ml_core.readers import write_mantid_nexus

    y, ee, qe = measured_like()
    write_mantid_nexus(tmp_path / "ARCS_123456_sqw.nxs", y.T, ee, qe,
                       logs={"Ei": 50.0, "SampleTemp": np.array([300.0, 302.0])})
    assert autoreduce.main([str(tmp_path / "ARCS_123456.nxs.h5"), str(tmp_path)]) == 0
    result = json.loads((tmp_path / "ARCS_123456_phonon.json").read_text())
    assert result["method"] == "predict" and result["names"] == ["1XX", "1XY", "1ZZ", "2XX", "2YY"]
    assert len(result["force_constants"]) == 5 and result["temperature_k"] == pytest.approx(301.0)
    assert result["ei_mev"] == 50.0 and result["instrument"] == "ARCS"
    assert (tmp_path / "ARCS_123456_phonon.png").stat().st_size > 10_000
    assert (tmp_path / "ARCS_123456_phonon.csv").read_text().count("\n") == 6
    rows = (tmp_path / "phonon_experiment_log.csv").read_text().splitlines()
    assert rows[0].startswith("run,material") and rows[1].startswith("ARCS_123456,Al,ARCS,50.0")


def test_autoreduce_never_fails_the_reduction(mantid, autoreduce, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="phonon_ml.autoreduce"):
        assert autoreduce.main([str(tmp_path / "ARCS_999.nxs.h5"), str(tmp_path)]) == 0  # nothing reduced, no Mantid
    assert "phonon-ml step failed for" in caplog.text and "the reduced data are kept" in caplog.text
    assert autoreduce.phonon_step(str(tmp_path / "ARCS_999.nxs.h5"), str(tmp_path), material="Xx") is None
