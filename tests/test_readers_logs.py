"""Measured data at any Ei: Ei, temperature and instrument from the logs, no silent Ei, the default grid, and
the half-area coverage rule (conventions §7)."""
from __future__ import annotations

import numpy as np
import pytest

from phonon_ml_core import cli
from phonon_ml_core.specs.grid import Grid, edges_to_centres, q_limits, standard_grid
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.preprocess.measurement import read_measured
from phonon_ml_core.preprocess.pipeline import preprocess, preprocess_with_report
from phonon_ml_core.readers import read_spectrum, write_mantid_nexus, write_nxspe
from phonon_ml_core.readers.logs import EI_LOGS, TEMPERATURE_LOGS, first_log
from phonon_ml_core.readers.powder import q_of
from phonon_ml_core.specs import default_grid

EI = 80.0
SNS_TEMPERATURE_LOGS = ("SampleTemp", "sampletemp", "SensorA", "SensorB", "SensorC", "temp5", "temp8")


def sqw(q, e):
    """A smooth positive S(|Q|,E)."""
    return 1.0 + q ** 2 * np.exp(-0.05 * q ** 2) * np.exp(-0.5 * ((e - 35.0) / 6.0) ** 2)


def fine_sqw(ei=EI, two_theta=(2.0, 60.0), n_q=300, n_e=200):
    """S(|Q|,E) on a fine grid, NaN outside the kinematic range of ``two_theta`` (SofQW layout: rows |Q|)."""
    q_edges, e_edges = np.linspace(0.0, 12.0, n_q + 1), np.linspace(-5.0, 0.95 * ei, n_e + 1)
    q, e = edges_to_centres(q_edges), edges_to_centres(e_edges)
    lo, hi = q_limits(e, ei, two_theta)
    y = np.where((q[None, :] >= lo[:, None]) & (q[None, :] <= hi[:, None]), sqw(q[None, :], e[:, None]), np.nan)
    return q_edges, e_edges, y.T


def test_log_table_has_the_sns_names():
    assert set(SNS_TEMPERATURE_LOGS) <= set(TEMPERATURE_LOGS)
    assert {"Ei", "EI", "ei", "EnergyRequest", "Efixed"} <= set(EI_LOGS)
    logs = {"SensorB": np.array([np.nan, 99.0, 101.0]), "Ei": "0"}
    assert first_log(TEMPERATURE_LOGS, logs.get) == ("SensorB", 100.0)
    assert first_log(EI_LOGS, logs.get) == (None, None)          # Ei = 0 is no Ei


@pytest.mark.parametrize("log_name", SNS_TEMPERATURE_LOGS)
def test_mantid_file_at_80_mev_on_sequoia(tmp_path, log_name):
    q_edges, e_edges, y = fine_sqw()
    p = tmp_path / "run.nxs"
    write_mantid_nexus(p, y, e_edges, q_edges, logs={"Ei": [EI, EI], log_name: [149.0, 151.0]}, instrument="SEQUOIA")
    s = read_spectrum(p)
    assert s.grid.ei_mev == EI and s.instrument == "SEQUOIA" and s.temperature == pytest.approx(150.0)
    assert s.metadata["temperature_log"] == log_name and s.grid.two_theta_deg == (2.0, 60.0)
    out = preprocess(s)
    want = default_grid(EI, "SEQUOIA")
    np.testing.assert_array_equal(out.grid.q, want.q)
    np.testing.assert_array_equal(out.grid.energy, want.energy)
    assert out.experiment.instrument == "SEQUOIA" and out.experiment.ei_mev == EI
    assert out.experiment.chopper_package == "ARCS-100-1.5-AST"
    assert out.material is None        # the library records no material unless told; the CLI records Al then
    assert out.temperature == pytest.approx(150.0)


def test_nxspe_at_80_mev_on_sequoia_temperature_from_a_sample_log(tmp_path):
    polar = np.arange(2.5, 60.0, 0.5)
    e_edges = np.linspace(0.0, 76.0, 153)
    ec = edges_to_centres(e_edges)
    data = sqw(q_of(np.radians(polar)[:, None], ec[None, :], EI), ec[None, :])
    p = tmp_path / "run.nxspe"
    write_nxspe(p, data, e_edges, polar, np.full(polar.size, 0.5), ei_mev=EI, instrument="SEQUOIA",
                sample_logs={"temp8": [199.0, 201.0]})
    s = read_measured(p)
    want = default_grid(EI, "SEQUOIA")
    np.testing.assert_allclose(s.grid.q_edges, want.q_edges)            # onto the default grid's |Q| bins
    assert s.grid.ei_mev == EI and s.instrument == "SEQUOIA" and s.temperature == pytest.approx(200.0)
    out = preprocess(s)
    assert out.grid.shape == want.shape and out.experiment.instrument == "SEQUOIA"
    assert out.grid.n_valid > 0.9 * want.n_valid
    h5 = tmp_path / "run.h5"
    assert cli.main(["preprocess", "--input", str(p), "--output", str(h5)]) == 0
    r = read_spectrum(h5)
    assert r.material.element == "Al" and r.experiment.instrument == "SEQUOIA" and r.experiment.ei_mev == EI
    np.testing.assert_allclose(r.intensity, out.intensity, atol=1e-6)


def test_no_ei_is_an_error_and_ei_fixes_it(tmp_path, capsys):
    q_edges, e_edges, y = fine_sqw()
    p = tmp_path / "noei.nxs"
    write_mantid_nexus(p, y, e_edges, q_edges, logs={"SampleTemp": 300.0})
    out = tmp_path / "out.h5"
    assert cli.main(["preprocess", "--input", str(p), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no incident energy" in err and "--ei" in err and not out.exists()
    assert cli.main(["preprocess", "--input", str(p), "--output", str(out), "--ei", "80",
                     "--instrument", "sequoia", "--material", "Cu"]) == 0
    r = read_spectrum(out)
    assert r.grid.ei_mev == EI and r.experiment.instrument == "SEQUOIA" and r.experiment.ei_mev == EI
    assert r.material.element == "Cu" and r.grid.same_as(r.experiment.grid)
    np.testing.assert_array_equal(r.grid.q, default_grid(EI, "SEQUOIA").q)
    # NXSPE without fixed_energy: the same error
    nx = tmp_path / "noei.nxspe"
    write_nxspe(nx, np.ones((3, 4)), np.linspace(0, 40, 5), np.array([10.0, 20.0, 30.0]))
    with pytest.raises(ValueError, match="no incident energy"):
        read_spectrum(nx)
    assert read_spectrum(nx, ei_mev=50.0).grid.ei_mev == 50.0


def _edge_cut_input(grid: Grid, cover: np.ndarray, ei: float) -> Spectrum:
    """S on a grid 10× finer in |Q| than ``grid``, finite only above a per-row |Q| cut: in row i the first valid
    bin of ``grid`` is covered over the fraction ``cover[i]`` of its width (its upper part)."""
    sub = 10
    qe = np.linspace(grid.q_edges[0], grid.q_edges[-1], sub * grid.shape[1] + 1)
    q = edges_to_centres(qe)
    first = grid.mask.argmax(axis=1)
    cut = grid.q_edges[first + 1] - cover * np.diff(grid.q_edges)[first]
    keep = q[None, :] >= cut[:, None] - 1e-12
    y = np.where(keep, sqw(q[None, :], grid.energy[:, None]), np.nan)
    g = Grid(q=q, energy=grid.energy, mask=keep, ei_mev=ei, two_theta_deg=grid.two_theta_deg, q_edges=qe,
             energy_edges=grid.energy_edges)
    return Spectrum(intensity=y, grid=g, temperature=300.0, quantity="S", instrument="ARCS")


def test_half_area_rule_on_a_default_grid():
    grid = default_grid(EI, "ARCS")
    rows = np.arange(grid.shape[0])
    cover = np.where(rows % 2 == 0, 0.6, 0.4)               # even rows: 60 % of the edge bin, odd rows: 40 %
    out = preprocess(_edge_cut_input(grid, cover, EI), background="none")
    first = grid.mask.argmax(axis=1)
    kept = out.grid.mask[rows, first]
    assert kept[rows % 2 == 0].all() and not kept[rows % 2 == 1].any()
    others = grid.mask.copy()
    others[rows, first] = False
    assert np.array_equal(out.grid.mask & others, others)    # fully covered bins all kept


def test_standard_grid_partial_low_q_edge_keeps_mask_npy():
    """Data covering the standard mask's low-|Q| edge bins only partly give exactly mask.npy (none lost)."""
    g = standard_grid()
    out, rep = preprocess_with_report(_edge_cut_input(g, np.full(g.shape[0], 0.3), 50.0), background="none")
    assert rep.n_lost == 0 and np.array_equal(out.grid.mask, g.mask) and out.grid is g
