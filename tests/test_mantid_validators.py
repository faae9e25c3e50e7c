"""Item 7 of issue 15: input workspace properties carry Mantid's workspace validators (WorkspaceUnitValidator,
HistogramValidator, CommonBinsValidator in a CompositeValidator), so Workbench filters the dialogs' workspace lists,
and a wrong workspace is rejected when the property is set, with Mantid's own words
(Framework/API/src/WorkspaceUnitValidator.cpp, HistogramValidator.cpp, CommonBinsValidator.cpp)."""
from __future__ import annotations

import numpy as np
import pytest

from mantid_standin.harness import make_sqw, mantid_fixture, measured_like  # noqa: F401

UNIT = "The workspace must have units of DeltaE"
HISTOGRAM = "The workspace must contain histogram data"
COMMON = "The workspace must have common bin boundaries for all histograms"


@pytest.fixture(scope="module")
def data(mantid):
    y, ee, qe = measured_like()
    make_sqw(mantid, "v_good", y, ee, qe)
    make_sqw(mantid, "v_tof", y, ee, qe, x_unit="TOF")
    make_sqw(mantid, "v_transposed", y, ee, qe, transposed=True)
    s = mantid.sapi
    centres = 0.5 * (ee[1:] + ee[:-1])  # point data: len(X) == len(Y)
    s.CreateWorkspace(OutputWorkspace="v_points", DataX=centres, DataY=np.nan_to_num(y).T.ravel(), NSpec=len(qe) - 1,
                      UnitX="DeltaE", VerticalAxisUnit="MomentumTransfer", VerticalAxisValues=qe)
    nq = len(qe) - 1
    xs = np.tile(ee, (nq, 1))
    xs[-1] += 0.1  # the last spectrum's bins shifted: not common bins
    s.CreateWorkspace(OutputWorkspace="v_ragged", DataX=xs.ravel(), DataY=np.nan_to_num(y).T.ravel(), NSpec=nq,
                      UnitX="DeltaE", VerticalAxisUnit="MomentumTransfer", VerticalAxisValues=qe)
    s.CreateWorkspace(OutputWorkspace="v_tof_points", DataX=centres, DataY=np.nan_to_num(y).T.ravel(), NSpec=nq,
                      UnitX="TOF", VerticalAxisUnit="MomentumTransfer", VerticalAxisValues=qe)
    return mantid


def _set(mantid, alg_name, ws_name):
    alg = mantid.api.AlgorithmManager.create(alg_name)
    alg.setProperty("InputWorkspace", ws_name)
    return alg


@pytest.mark.parametrize("alg_name", ["PreprocessForML", "FitForceConstantsNelderMead"])
def test_sofqw_workspace_accepted(data, alg_name):
    alg = _set(data, alg_name, "v_good")
    assert alg.getProperty("InputWorkspace").isValid == ""


@pytest.mark.parametrize("alg_name", ["PreprocessForML", "FitForceConstantsNelderMead"])
@pytest.mark.parametrize("ws_name, message", [("v_points", HISTOGRAM), ("v_ragged", COMMON)])
def test_point_data_and_ragged_bins_rejected_on_set(data, alg_name, ws_name, message):
    alg = data.api.AlgorithmManager.create(alg_name)
    with pytest.raises(ValueError, match=message):
        alg.setProperty("InputWorkspace", ws_name)
    with pytest.raises(ValueError, match=f'Problem setting "InputWorkspace" in {alg_name}-v1: {message}'):
        getattr(data.sapi, alg_name)(InputWorkspace=ws_name, OutputWorkspace="v_out")


def test_fit_requires_delta_e(data):
    """FitForceConstantsNelderMead takes the SofQW layout only: X must be DeltaE (transposed input rejected)."""
    for name in ("v_tof", "v_transposed"):
        with pytest.raises(ValueError, match=UNIT):
            _set(data, "FitForceConstantsNelderMead", name)
    with pytest.raises(ValueError, match=UNIT):  # the composite reports its first failing child: the unit
        _set(data, "FitForceConstantsNelderMead", "v_tof_points")


def test_preprocess_keeps_the_transposed_layout(data):
    """PreprocessForML accepts X = |Q| (no unit validator); a wrong unit is still refused, by validateInputs."""
    assert _set(data, "PreprocessForML", "v_transposed").getProperty("InputWorkspace").isValid == ""
    assert _set(data, "PreprocessForML", "v_tof").getProperty("InputWorkspace").isValid == ""
    with pytest.raises(RuntimeError, match="(?s)Some invalid Properties found.*not energy transfer"):
        data.sapi.PreprocessForML(InputWorkspace="v_tof", OutputWorkspace="v_out")
    with pytest.raises(ValueError, match=HISTOGRAM):
        _set(data, "PreprocessForML", "v_tof_points")


def test_group_members_validated(data):
    """WorkspaceProperty::isValidGroup: each member of a group is validated; the first error rejects the group."""
    data.sapi.GroupWorkspaces(InputWorkspaces="v_good,v_points", OutputWorkspace="v_group_bad")
    for alg_name in ("PreprocessForML", "FitForceConstantsNelderMead"):
        with pytest.raises(ValueError, match=HISTOGRAM):
            _set(data, alg_name, "v_group_bad")
    data.sapi.GroupWorkspaces(InputWorkspaces="v_good,v_tof", OutputWorkspace="v_group_tof")
    with pytest.raises(ValueError, match=UNIT):
        _set(data, "FitForceConstantsNelderMead", "v_group_tof")
    _set(data, "PreprocessForML", "v_group_tof")  # no unit validator there: validateInputs judges each member


def test_group_inputs_of_predict_and_adapt_take_no_matrix_validator(data):
    """Predict/Adapt take a WorkspaceProperty holding a group as one input (checkGroups() false): a
    MatrixWorkspace validator would reject the group itself, so they declare none."""
    data.sapi.GroupWorkspaces(InputWorkspaces="v_good", OutputWorkspace="v_group_one")
    for alg_name in ("PredictForceConstants", "AdaptPhononModel"):
        assert _set(data, alg_name, "v_group_one").getProperty("InputWorkspace").isValid == ""


def test_standin_validators_as_mantid(data):
    if data.real:
        pytest.skip("checks the stand-in's own classes")
    api, kernel = data.api, data.kernel
    good, tof, points = (api.mtd[n] for n in ("v_good", "v_tof", "v_points"))
    assert api.WorkspaceUnitValidator("DeltaE").check(good) == ""
    assert api.WorkspaceUnitValidator("DeltaE").check(tof) == UNIT
    assert api.HistogramValidator().check(points) == HISTOGRAM
    assert api.HistogramValidator(False).check(good) == "The workspace must not contain histogram data"
    assert api.CommonBinsValidator().check(api.mtd["v_ragged"]) == COMMON
    both = kernel.CompositeValidator([api.WorkspaceUnitValidator("DeltaE"), api.HistogramValidator()])
    assert both.check(api.mtd["v_tof_points"]) == UNIT
    with pytest.raises(NotImplementedError):
        kernel.CompositeValidator([], relation=kernel.CompositeRelation.OR)
