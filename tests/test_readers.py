"""Readers: Mantid processed NeXus, NXSPE (→ powder S(|Q|,E)), phonon-ml HDF5, format sniffing."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from phonon_ml_core.physics.units import HBAR2_OVER_2MN_MEV_A2
from phonon_ml_core.specs.grid import edges_to_centres, standard_grid
from phonon_ml_core.readers import (read_mantid_nexus, read_nxspe, read_spectrum, sniff_format,
                                    write_mantid_nexus, write_nxspe)
from phonon_ml_core.readers.powder import powder_sqw
from phonon_ml_core.data.spectrum import Spectrum

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"
C = 2.0721  # ħ²/2m_n, meV Å² (conventions §2)


def q_expected(two_theta_deg: float, e_mev: float, ei: float) -> float:
    ki2, kf2 = ei / C, (ei - e_mev) / C
    return float(np.sqrt(ki2 + kf2 - 2 * np.sqrt(ki2 * kf2) * np.cos(np.radians(two_theta_deg))))


def sqe_fixture(n_q: int = 12, n_e: int = 9):
    rng = np.random.default_rng(1)
    q_edges = np.linspace(0.0, 6.0, n_q + 1)
    e_edges = np.linspace(-5.0, 40.0, n_e + 1)
    y = rng.uniform(0.5, 2.0, (n_q, n_e))      # SofQW layout: rows |Q|, columns E
    y[:2, -3:] = np.nan                        # uncovered corner
    err = 0.1 * np.sqrt(y)
    return q_edges, e_edges, y, err


# -- Mantid processed NeXus --------------------------------------------------------------------------
def test_mantid_sofqw_round_trip(tmp_path):
    q_edges, e_edges, y, err = sqe_fixture()
    p = tmp_path / "sqw.nxs"
    write_mantid_nexus(p, y, e_edges, q_edges, errors=err, logs={"Ei": 50.0, "SampleTemp": [49.0, 51.0]})
    assert sniff_format(p) == "mantid"
    s = read_spectrum(p)
    assert isinstance(s, Spectrum)
    assert s.quantity == "S" and s.normalization == "none"
    np.testing.assert_array_equal(s.intensity, y.T)
    np.testing.assert_allclose(s.errors[np.isfinite(y.T)], err.T[np.isfinite(y.T)])
    np.testing.assert_allclose(s.grid.q_edges, q_edges)
    np.testing.assert_allclose(s.grid.energy_edges, e_edges)
    np.testing.assert_array_equal(s.grid.mask, np.isfinite(y.T))
    assert s.temperature == pytest.approx(50.0)
    assert s.grid.ei_mev == pytest.approx(50.0)
    assert s.metadata["source_file"] == str(p) and s.metadata["temperature_log"] == "SampleTemp"


def test_mantid_transposed_points_and_temperature_fallback(tmp_path):
    q_edges, e_edges, y, err = sqe_fixture()
    qc, ec = edges_to_centres(q_edges), edges_to_centres(e_edges)
    p = tmp_path / "t.nxs"
    write_mantid_nexus(p, y.T, qc, ec, errors=err.T, axis1_units="MomentumTransfer", axis2_units="DeltaE",
                       logs={"SensorA": [99.0, 101.0], "Ei": 50.0})
    s = read_mantid_nexus(p)
    np.testing.assert_array_equal(s.intensity, y.T)
    np.testing.assert_allclose(s.grid.q, qc)
    np.testing.assert_allclose(s.grid.energy, ec)
    assert s.temperature == pytest.approx(100.0) and s.metadata["temperature_log"] == "SensorA"


def test_mantid_without_logs_and_descending_axis(tmp_path):
    q_edges, e_edges, y, err = sqe_fixture()
    p = tmp_path / "d.nxs"
    write_mantid_nexus(p, y[::-1], e_edges, q_edges[::-1], errors=err[::-1])
    with pytest.raises(ValueError, match="no incident energy.*--ei"):
        read_spectrum(p)   # never a silent default Ei
    s = read_spectrum(p, ei_mev=50.0)
    assert s.temperature is None and s.metadata["ei_from_file"] is False and s.grid.ei_mev == 50.0
    np.testing.assert_array_equal(s.intensity, y.T)


def test_mantid_wavenumber_energy_converted(tmp_path):
    q_edges, e_edges, y, err = sqe_fixture()
    p = tmp_path / "w.nxs"
    write_mantid_nexus(p, y, e_edges / 0.12398419843320026, q_edges, errors=err, axis1_units="DeltaE_inWavenumber")
    np.testing.assert_allclose(read_spectrum(p, ei_mev=50.0).grid.energy_edges, e_edges, rtol=1e-6)


def test_mantid_unfinalised_rebinned_output(tmp_path):
    q_edges, e_edges, y, err = sqe_fixture()
    frac = np.full(y.shape, 0.5)
    p = tmp_path / "f.nxs"
    write_mantid_nexus(p, y * frac, e_edges, q_edges, errors=err * frac, frac_area=frac)
    s = read_spectrum(p, ei_mev=50.0)
    np.testing.assert_allclose(s.intensity, y.T)


@pytest.mark.parametrize("u1,u2,match", [
    ("TOF", "MomentumTransfer", "not energy transfer"),
    ("Wavelength", "MomentumTransfer", "not energy transfer"),
    ("DeltaE", "spectraNumber", r"not \|Q\|"),
    ("DeltaE", "Degrees", "scattering angle"),
    ("DeltaE", "QSquared", "Q²"),
])
def test_mantid_bad_axes(tmp_path, u1, u2, match):
    q_edges, e_edges, y, err = sqe_fixture()
    p = tmp_path / "bad.nxs"
    write_mantid_nexus(p, y, e_edges, q_edges, errors=err, axis1_units=u1, axis2_units=u2)
    with pytest.raises(ValueError, match=match):
        read_spectrum(p)


def test_mantid_text_axis(tmp_path):
    q_edges, e_edges, y, err = sqe_fixture()
    p = tmp_path / "txt.nxs"
    write_mantid_nexus(p, y, e_edges, [f"s{i}" for i in range(y.shape[0])], errors=err, axis2_units="TextAxis")
    with pytest.raises(ValueError, match=r"not \|Q\|"):
        read_spectrum(p)


@pytest.mark.parametrize("case,match", [
    ("axis", "mismatched array shapes"),
    ("errors_shape", "mismatched array shapes"),
    ("negative", "negative"),
    ("allnan", "all NaN"),
    ("inf", "infinite"),
])
def test_mantid_bad_data(tmp_path, case, match):
    q_edges, e_edges, y, err = sqe_fixture()
    if case == "axis":
        e_edges = e_edges[:-3]
    elif case == "errors_shape":
        err = err[:, :-1]
    elif case == "negative":
        err = err.copy()
        err[3, 3] = -1.0
    elif case == "allnan":
        y = np.full_like(y, np.nan)
    elif case == "inf":
        y = y.copy()
        y[4, 4] = np.inf
    p = tmp_path / "bad.nxs"
    write_mantid_nexus(p, y, e_edges, q_edges, errors=err)
    with pytest.raises(ValueError, match=match):
        read_spectrum(p)


# -- file sniffing --------------------------------------------------------------------------------
def test_missing_truncated_non_hdf5_unknown(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_spectrum(tmp_path / "nope.nxs")
    txt = tmp_path / "notes.nxs"
    txt.write_text("this is not a NeXus file\n" * 10)
    with pytest.raises(ValueError, match="not an HDF5/NeXus file"):
        read_spectrum(txt)
    q_edges, e_edges, y, err = sqe_fixture()
    good = tmp_path / "good.nxs"
    write_mantid_nexus(good, y, e_edges, q_edges, errors=err)
    cut = tmp_path / "cut.nxs"
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(ValueError, match="truncated"):
        read_spectrum(cut)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("foo", data=[1, 2, 3])
    with pytest.raises(ValueError, match="unknown HDF5 layout"):
        read_spectrum(other)
    hdf4 = tmp_path / "old.nxs"
    hdf4.write_bytes(b"\x0e\x03\x13\x01" + b"\0" * 100)
    with pytest.raises(ValueError, match="HDF4"):
        read_spectrum(hdf4)


# -- NXSPE ----------------------------------------------------------------------------------------
def test_nxspe_single_detector_lands_at_kinematic_q(tmp_path):
    ei, tt = 50.0, 60.0
    e_edges = np.linspace(0.0, 40.0, 41)
    data = np.ones((1, 40))
    p = tmp_path / "one.nxspe"
    write_nxspe(p, data, e_edges, [tt], [0.2], error=0.1 * data, ei_mev=ei, temperature=300.0)
    assert sniff_format(p) == "nxspe"
    s = read_spectrum(p, dq=0.02)
    assert s.quantity == "S" and s.grid.ei_mev == ei and s.temperature == 300.0
    for k, e in enumerate(s.grid.energy):
        row = s.intensity[k]
        cols = np.flatnonzero(np.isfinite(row))
        assert cols.size > 0
        q0 = q_expected(tt, e, ei)
        assert s.grid.q_edges[cols[0]] <= q0 <= s.grid.q_edges[cols[-1] + 1], (e, q0)
        assert abs(s.grid.q[cols].mean() - q0) < 0.05
        np.testing.assert_allclose(row[cols], 1.0)


def test_q_formula_uses_project_constant():
    assert pytest.approx(C, rel=1e-4) == HBAR2_OVER_2MN_MEV_A2


def _reference_overlaps(a0, a1, b0, b1, de, q_edges, n=4000):
    """Slow reference: overlap of a straight-sided quadrilateral with |Q| strips by slicing in E."""
    t = (np.arange(n) + 0.5) / n
    left, right = a0 + (a1 - a0) * t, b0 + (b1 - b0) * t
    lo = np.maximum(left[:, None], q_edges[None, :-1])
    hi = np.minimum(right[:, None], q_edges[None, 1:])
    return np.clip(hi - lo, 0, None).sum(0) * de / n


def test_powder_rebin_matches_slow_area_reference():
    ei = 50.0
    e_edges = np.array([5.0, 15.0, 30.0])
    polar = np.array([20.0, 21.5, 40.0])
    width = np.array([3.0, 2.0, 1.0])
    rng = np.random.default_rng(3)
    data = rng.uniform(1, 3, (3, 2))
    err = rng.uniform(0.1, 0.3, (3, 2))
    q_edges = np.linspace(0.5, 5.0, 31)
    out, out_err = powder_sqw(data, err, e_edges, polar, width, ei, q_edges)
    for k in range(2):
        num = np.zeros(30)
        den = np.zeros(30)
        var = np.zeros(30)
        for d in range(3):
            lo, hi = np.radians(polar[d] - width[d] / 2), np.radians(polar[d] + width[d] / 2)
            def q(th, e):
                return q_expected(np.degrees(th), e, ei)
            w = _reference_overlaps(q(lo, e_edges[k]), q(lo, e_edges[k + 1]), q(hi, e_edges[k]), q(hi, e_edges[k + 1]),
                                    e_edges[k + 1] - e_edges[k], q_edges)
            num += w * data[d, k]
            den += w
            var += (w * err[d, k]) ** 2
        ok = den > 1e-6
        np.testing.assert_allclose(out[k, ok], num[ok] / den[ok], rtol=2e-3)
        np.testing.assert_allclose(out_err[k, ok], np.sqrt(var[ok]) / den[ok], rtol=2e-3)
        assert np.all(np.isnan(out[k, den == 0]))


def test_nxspe_many_detectors_constant_and_masking(tmp_path):
    polar = np.arange(5.0, 135.0, 0.5)
    e_edges = np.linspace(-5.0, 45.0, 26)
    data = np.full((polar.size, 25), 2.0)
    data[10] = np.nan                     # masked detector
    data[11] = -1e30                      # masked the SPE way
    p = tmp_path / "many.nxspe"
    write_nxspe(p, data, e_edges, polar, np.full(polar.size, 0.5), error=0.1 * np.ones_like(data), ei_mev=50.0)
    s = read_nxspe(p)
    v = s.intensity[np.isfinite(s.intensity)]
    np.testing.assert_allclose(v, 2.0)
    assert s.temperature is None
    # width missing: assumed from the detector spacing
    p2 = tmp_path / "nowidth.nxspe"
    write_nxspe(p2, np.full((polar.size, 25), 2.0), e_edges, polar, None, ei_mev=50.0)
    s2 = read_nxspe(p2)
    assert s2.metadata["polar_width_assumed_deg"] == pytest.approx(0.5)


def test_nxspe_errors(tmp_path):
    e_edges = np.linspace(0.0, 40.0, 9)
    p = tmp_path / "noei.nxspe"
    write_nxspe(p, np.ones((2, 8)), e_edges, [30.0, 31.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="incident energy"):
        read_spectrum(p)
    assert read_spectrum(p, ei_mev=50.0).grid.ei_mev == 50.0
    p2 = tmp_path / "shape.nxspe"
    write_nxspe(p2, np.ones((2, 8)), e_edges, [30.0, 31.0, 32.0], [1.0, 1.0, 1.0], ei_mev=50.0)
    with pytest.raises(ValueError, match="mismatched array shapes"):
        read_spectrum(p2)


# -- phonon-ml HDF5 and the shared real data ---------------------------------------------------------
def test_phonon_ml_round_trip(tmp_path):
    g = standard_grid()
    rng = np.random.default_rng(0)
    x = np.where(g.mask, rng.normal(size=g.shape), np.nan)
    s = Spectrum(intensity=x, grid=g, temperature=280.0, quantity="S", errors=np.abs(x) * 0.1)
    p = tmp_path / "s.h5"
    s.to_hdf5(p)
    assert sniff_format(p) == "phonon-ml"
    r = read_spectrum(p)
    np.testing.assert_array_equal(r.intensity, s.intensity)
    np.testing.assert_array_equal(r.errors, s.errors)
    assert r.grid.same_as(g) and r.temperature == 280.0 and r.quantity == "S"


def test_shared_real_spectra_load():
    files = sorted(SHARED.glob("al_*K.h5")) if SHARED.is_dir() else []
    if not files:
        pytest.skip("shared real data ../shared/data/al_arcs_ei50 not present")
    mask = np.load(SHARED / "mask.npy")
    for p in files:
        s = read_spectrum(p)
        assert s.grid.shape == (70, 101) and s.quantity == "chi''" and s.normalization == "mean"
        np.testing.assert_array_equal(s.grid.mask, mask)
        assert s.temperature > 0
