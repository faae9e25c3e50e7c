"""Data-set generation: sampling rules, stability rejection, sharding, resume, atomic output, CLI."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from phonon_ml_core.cli import main
from phonon_ml_core.data.normalization import is_mean_normalized
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.physics.bvk import stability_check
from phonon_ml_core.simulator import PowderSimulator
from phonon_ml_core.simulator.dataset import (
    SamplingConfig,
    generate_dataset,
    merge_shards,
    parse_shard,
    sample_parameters,
    shard_slice,
)
from phonon_ml_core.specs import ALUMINIUM

AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)


def test_sampling_follows_the_study_rule_and_rejects_unstable_sets():
    p = sample_parameters(400, SamplingConfig(seed=3))
    lo = np.minimum(0.5 * AL_REFERENCE_FC, 1.5 * AL_REFERENCE_FC)
    hi = np.maximum(0.5 * AL_REFERENCE_FC, 1.5 * AL_REFERENCE_FC)
    lo[4], hi[4] = -1.0, 1.0  # 2YY in an absolute range
    assert p.force_constants.shape == (400, 5)
    assert np.all(p.force_constants >= lo) and np.all(p.force_constants <= hi)
    # the draws span the ranges (not a narrow cluster)
    assert np.all(p.force_constants.max(0) - p.force_constants.min(0) > 0.8 * (hi - lo))
    assert p.n_rejected > 0  # the 0.5–1.5 box contains unstable sets (e.g. weak 1XX with strong negative 1ZZ)
    assert stability_check(p.force_constants, ALUMINIUM.bvk_model(temperature_k=50.0)).all()
    # reproducible from the seed, different for another seed
    assert np.array_equal(p.force_constants, sample_parameters(400, SamplingConfig(seed=3)).force_constants)
    assert not np.array_equal(p.force_constants, sample_parameters(400, SamplingConfig(seed=4)).force_constants)


def test_stability_check_flags_known_unstable_constants():
    model = ALUMINIUM.bvk_model(temperature_k=50.0)
    sets = np.array([AL_REFERENCE_FC, [-5.0, 10.38, -2.77, 2.3, -0.25], [10.35, 10.38, -12.0, 2.3, -0.25]])
    assert stability_check(sets, model).tolist() == [True, False, False]


def test_stability_check_agrees_with_lapack_eigenvalues_near_the_boundary():
    """Sylvester's criterion (all_eigenvalues_above) against numpy's eigvalsh, on random symmetric matrices around
    the threshold and on sampled constants that straddle the stability boundary (1ZZ driven very negative)."""
    import torch

    from phonon_ml_core.physics.bvk import stability_q_points
    from phonon_ml_core.physics.eigen3 import PACKED, all_eigenvalues_above
    from phonon_ml_core.physics.units import FC_TO_MEV2

    rng = np.random.default_rng(0)
    m = rng.standard_normal((4000, 3, 3))
    a = m @ m.transpose(0, 2, 1) - rng.uniform(0, 2, (4000, 1, 1)) * np.eye(3)
    for tol in (0.0, 0.3):
        want = np.linalg.eigvalsh(a).min(1) > tol
        packed = torch.as_tensor(np.stack([a[:, i, j] for i, j in PACKED], -1))
        assert np.array_equal(all_eigenvalues_above(packed, tol).numpy(), want)
        assert 0.05 < want.mean() < 0.95  # both outcomes are represented
    model = ALUMINIUM.bvk_model(temperature_k=50.0)
    sets = np.tile(np.asarray(AL_REFERENCE_FC, float), (300, 1))
    sets[:, 2] = np.linspace(-30.0, 0.0, 300)
    sets[:, 0] += rng.normal(0, 3, 300)
    q = stability_q_points(model.lattice, model.lattice_parameter)
    phase = 1.0 - np.cos(q @ model.bond_vectors.T)
    dyn = np.einsum("nk,pl,lkij->npij", sets, phase, model.bond_basis) * FC_TO_MEV2 / model.mass  # ω², meV²
    lapack = np.linalg.eigvalsh(dyn).min((1, 2)) > 1e-6
    assert 0.1 < lapack.mean() < 0.9
    born = []
    for fc in sets:  # Born's long-wavelength criteria from the elastic constants (independent of the q-points)
        c = ALUMINIUM.bvk_model(force_constants=fc, temperature_k=50.0).elastic_constants()
        born.append(c["C11"] > abs(c["C12"]) and c["C44"] > 0 and c["C11"] + 2 * c["C12"] > 0)
    assert np.array_equal(stability_check(sets, model, n_grid=12), lapack & np.array(born))


def test_shards_partition_the_indices():
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x", "1-2", "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    parts = [np.arange(103)[shard_slice(103, (i, 4))] for i in range(4)]
    assert np.array_equal(np.concatenate(parts), np.arange(103))


@pytest.fixture(scope="module")
def small_settings():
    from phonon_ml_core.simulator import SimulationSettings
    return SimulationSettings(mesh_density=8)


def test_generate_resume_and_shards_agree(tmp_path, small_settings):
    whole = generate_dataset(tmp_path / "whole.h5", 10, SamplingConfig(seed=5), settings=small_settings,
                             batch_size=4, progress=False)
    s = Spectrum.from_hdf5(whole)
    assert s.intensity.shape == (10, 70, 101) and s.force_constants.shape == (10, 5)
    assert is_mean_normalized(s.intensity, s.mask)
    assert np.all(np.isnan(s.intensity[:, ~s.mask]))
    assert s.metadata["n_total"] == 10 and "sampling" in s.metadata
    # each spectrum equals a direct simulation of its constants
    sim = PowderSimulator(settings=small_settings)
    direct = sim(s.force_constants[:2], s.temperatures()[:2]).numpy()
    np.testing.assert_allclose(s.intensity[:2][:, s.mask], direct[:, s.mask], atol=2e-5)
    # shards merge to the same data set
    a = generate_dataset(tmp_path / "a.h5", 10, SamplingConfig(seed=5), shard=(0, 2), settings=small_settings,
                         progress=False)
    b = generate_dataset(tmp_path / "b.h5", 10, SamplingConfig(seed=5), shard=(1, 2), settings=small_settings,
                         progress=False)
    merged = Spectrum.from_hdf5(merge_shards([b, a], tmp_path / "m.h5"))
    np.testing.assert_allclose(merged.force_constants, s.force_constants)
    np.testing.assert_allclose(merged.intensity[:, s.mask], s.intensity[:, s.mask], atol=1e-6)
    # an interrupted run (partial file with 4 done) resumes to the same result
    out = tmp_path / "resumed.h5"
    generate_dataset(tmp_path / "tmp.h5", 10, SamplingConfig(seed=5), settings=small_settings, batch_size=4,
                     progress=False)
    partial = out.with_name(out.name + ".partial")
    (tmp_path / "tmp.h5").rename(partial)
    with h5py.File(partial, "a") as f:
        f.attrs["completed"] = 4
        f["intensity"][4:] = 0.0
        f.attrs["signature"] = f.attrs["signature"]
    with h5py.File(partial, "r") as f:
        sig = f.attrs["signature"]
    with h5py.File(partial, "a") as f:  # the signature names the output's own settings, so resume accepts it
        f.attrs["signature"] = sig
    generate_dataset(out, 10, SamplingConfig(seed=5), settings=small_settings, batch_size=4, progress=False)
    assert not partial.exists()
    r = Spectrum.from_hdf5(out)
    np.testing.assert_allclose(r.intensity[:, s.mask], s.intensity[:, s.mask], atol=1e-6)


def test_existing_output_and_mismatched_partial_are_refused(tmp_path, small_settings):
    out = tmp_path / "x.h5"
    out.write_text("not mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_dataset(out, 4, settings=small_settings, progress=False)
    assert out.read_text() == "not mine"
    out2 = tmp_path / "y.h5"
    generate_dataset(out2, 4, SamplingConfig(seed=1), settings=small_settings, progress=False)
    partial = tmp_path / "z.h5.partial"
    out2.rename(partial)
    with pytest.raises(ValueError, match="different settings"):
        generate_dataset(tmp_path / "z.h5", 4, SamplingConfig(seed=2), settings=small_settings, progress=False)


def test_cli_simulate_one_spectrum_and_errors(tmp_path, capsys):
    out = tmp_path / "one.h5"
    assert main(["simulate", "--force-constants", "10.35,10.38,-2.77,2.30,-0.25", "--temperature", "300",
                 "--output", str(out), "--mesh-density", "8", "--plot", str(tmp_path / "one.png")]) == 0
    s = Spectrum.from_hdf5(out)
    assert s.intensity.shape == (70, 101) and s.temperature == 300.0 and s.quantity == "chi''"
    np.testing.assert_allclose(s.force_constants, AL_REFERENCE_FC)
    assert (tmp_path / "one.png").stat().st_size > 1000
    cases = [(["--force-constants", "1,2,3", "--temperature", "300"], "expected 5 force constants"),
             (["--force-constants", "10.35,10.38,-2.77,2.30,nan", "--temperature", "300"], "finite"),
             (["--force-constants", "10.35,10.38,-2.77,2.30,-0.25", "--temperature", "-5"], "positive"),
             (["--force-constants", "-5,10.38,-2.77,2.30,-0.25", "--temperature", "300"], "unstable"),
             (["--force-constants", "10.35,10.38,-2.77,2.30,-0.25"], "--temperature"),
             (["--count", "3", "--force-constants", "1,2,3,4,5"], "either"),
             (["--force-constants", "10.35,10.38,-2.77,2.30,-0.25", "--temperature", "300", "--ei", "8"],
              "below the grid"),
             ]
    for extra, message in cases:
        target = tmp_path / "bad.h5"
        assert main(["simulate", "--output", str(target), "--mesh-density", "8", *extra]) == 2
        assert message in capsys.readouterr().err
        assert not target.exists()
    assert main(["simulate", "--output", str(out), "--force-constants", "10.35,10.38,-2.77,2.30,-0.25",
                 "--temperature", "300"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_constant_range_sets_absolute_sampling_bounds(tmp_path, capsys):
    out = tmp_path / "set.h5"
    assert main(["simulate", "--count", "6", "--seed", "3", "--output", str(out), "--mesh-density", "8",
                 "--constant-range", "2xx=3.0,3.5", "--constant-range", "2YY=0.5,0.9", "--no-progress"]) == 0
    fc = Spectrum.from_hdf5(out).force_constants
    assert np.all((fc[:, 3] >= 3.0) & (fc[:, 3] <= 3.5)) and np.all((fc[:, 4] >= 0.5) & (fc[:, 4] <= 0.9))
    ref = np.asarray(AL_REFERENCE_FC)
    assert np.all(np.abs(fc[:, 0] - ref[0]) <= 0.5 * ref[0] + 1e-9)   # the others keep --range
    for bad, message in [("3XX=1,2", "NAME one of"), ("2XX", "NAME=LO,HI"), ("2XX=2,1", "LO must be below HI")]:
        target = tmp_path / "bad.h5"
        assert main(["simulate", "--count", "2", "--output", str(target), "--constant-range", bad]) == 2
        assert message in capsys.readouterr().err
        assert not target.exists()


def test_aluminium_sampling_defaults_are_unchanged():
    """The material's sampling ranges reproduce the study's rule draw for draw (same seed → same set)."""
    legacy = SamplingConfig(reference=AL_REFERENCE_FC.tolist(), relative_range=(0.5, 1.5),
                            absolute_ranges={"2YY": (-1.0, 1.0)}, seed=11)
    new = sample_parameters(50, SamplingConfig(seed=11))
    assert np.array_equal(new.force_constants, sample_parameters(50, legacy).force_constants)
    for a, b in zip(SamplingConfig().bounds(), legacy.bounds()):
        assert np.array_equal(a, b)


def test_dataset_for_another_material_records_its_specs_and_merges_only_matching_shards(tmp_path):
    from phonon_ml_core.simulator import SimulationSettings
    from phonon_ml_core.specs import ALUMINIUM, Experiment, get_material

    fe = get_material("Fe")
    exp = Experiment.create("SEQUOIA", ei_mev=80.0)
    st = SimulationSettings(mesh_density=6, bz_grid=4, dos_grid=6)
    kw = {"settings": st, "progress": False, "material": fe, "experiment": exp}
    cfg = SamplingConfig(seed=7, temperature_range=(100.0, 300.0))
    whole = Spectrum.from_hdf5(generate_dataset(tmp_path / "w.h5", 6, cfg, **kw))
    assert whole.material.same_as(fe) and whole.experiment.same_as(exp) and whole.names == fe.names
    assert whole.force_constants.shape == (6, 4) and whole.intensity.shape == (6, *exp.grid.shape)
    lo, hi = np.array(fe.sampling_ranges).T
    assert np.all((whole.force_constants >= lo) & (whole.force_constants <= hi))
    assert whole.metadata["force_constant_names"] == list(fe.names)
    assert whole.metadata["sampling_bounds"] == {"names": list(fe.names), "low": lo.tolist(), "high": hi.tolist()}
    sim = PowderSimulator.from_specs(fe, exp, st)
    direct = sim(whole.force_constants[:2], whole.temperatures()[:2]).numpy()
    np.testing.assert_allclose(whole.intensity[:2][:, exp.grid.mask], direct[:, exp.grid.mask], atol=2e-5)
    a = generate_dataset(tmp_path / "a.h5", 6, cfg, shard=(0, 2), **kw)
    b = generate_dataset(tmp_path / "b.h5", 6, cfg, shard=(1, 2), **kw)
    merged = Spectrum.from_hdf5(merge_shards([b, a], tmp_path / "m.h5"))
    assert merged.material.same_as(fe) and merged.experiment.same_as(exp)
    np.testing.assert_allclose(merged.force_constants, whole.force_constants)
    other_seed = generate_dataset(tmp_path / "s.h5", 6, SamplingConfig(seed=8, temperature_range=(100.0, 300.0)),
                                  shard=(1, 2), **kw)
    aluminium = generate_dataset(tmp_path / "al.h5", 6, cfg, shard=(1, 2), settings=st, progress=False)
    for parts, message in [([a], "indices 3–5 are missing"), ([a, a, b], "overlaps"),
                           ([a, other_seed], "sampling differ"), ([a, aluminium], "differ")]:
        with pytest.raises(ValueError, match=message):
            merge_shards(parts, tmp_path / "bad.h5")
        assert not (tmp_path / "bad.h5").exists()
    assert Spectrum.from_hdf5(aluminium).material.same_as(ALUMINIUM)
    with pytest.raises(ValueError, match=r"5 reference constants for the 4 constants of Fe"):
        generate_dataset(tmp_path / "x.h5", 4, SamplingConfig(reference=AL_REFERENCE_FC.tolist()), **kw)
