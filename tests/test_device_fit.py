"""Fits on a device: fit_spectrum(device=), `phonon-ml fit --device`, `phonon-ml predict --device` and the Mantid fit's
Device property; the one device check refuses a missing device before any work; CUDA fits compared with the CPU
when a GPU is present (skipped otherwise)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from device_support import cuda_set_fixture, needs_cuda, without_cuda  # noqa: F401
from mantid_standin.harness import mantid_fixture  # noqa: F401
from phonon_ml_core.cli import main
from phonon_ml_core.fitting.spectrum_fit import OnHost, fit_spectrum
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM

SETTINGS = SimulationSettings(mesh_density=6, bz_grid=4, dos_grid=6)


@pytest.fixture(scope="module")
def spectrum():
    """One simulated Al spectrum at 300 K (constants 10 % off the reference), mean-normalised."""
    from phonon_ml_core.data.spectrum import Spectrum

    sim = get_simulator(ALUMINIUM, None, settings=SETTINGS, dtype=torch.float64)
    fc = 1.1 * np.asarray(ALUMINIUM.reference_constants)
    y = sim(fc[None], 300.0)[0].numpy()
    return Spectrum(intensity=y, grid=sim.grid, temperature=300.0, normalization="mean", material=ALUMINIUM)


@without_cuda
def test_a_missing_device_is_refused_before_the_fit(tmp_path, spectrum, capsys):
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit_spectrum(spectrum, device="cuda", settings=SETTINGS)
    with pytest.raises(ValueError, match="not a torch device"):
        fit_spectrum(spectrum, device="gpu", settings=SETTINGS)
    data = tmp_path / "one.h5"
    spectrum.to_hdf5(data)
    for command in (["fit"], ["predict"]):
        out = tmp_path / "r.json"
        assert main([*command, "--input", str(data), "--output", str(out), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
        assert not out.exists()


def test_joint_fit_with_a_device_is_refused(tmp_path, spectrum, capsys, monkeypatch):
    """(CUDA faked present: the refusal names --joint whatever the machine.)"""
    data = tmp_path / "one.h5"
    spectrum.to_hdf5(data)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main(["fit", "--input", str(data), str(data), "--output", str(tmp_path / "r.json"), "--joint",
                 "--device", "cuda"]) == 2
    assert "--joint runs on the CPU" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["nelder-mead", "gradient"])
def test_a_simulator_seen_from_the_host_fits_exactly_as_the_simulator(spectrum, method):
    """OnHost (what a fit wraps a GPU simulator in) changes nothing but where the spectra land: the same fit."""
    kw = {"method": method, "settings": SETTINGS, "max_evaluations": 25, "uncertainty": method == "gradient",
          "n_starts": 2, "adam_steps": 3, "n_polish": 1}
    dtype = torch.float32 if method == "nelder-mead" else torch.float64
    sim = get_simulator(ALUMINIUM, None, grid=spectrum.grid, settings=SETTINGS, dtype=dtype)
    plain = fit_spectrum(spectrum, simulator=sim, **kw)
    hosted = fit_spectrum(spectrum, simulator=OnHost(sim), **kw)
    np.testing.assert_array_equal(plain.force_constants, hosted.force_constants)
    assert plain.nmse == hosted.nmse and plain.evaluations == hosted.evaluations


def test_the_mantid_fit_has_the_device_property(mantid):
    for name in ("FitForceConstantsNelderMead", "SimulatePowderINS", "TrainPhononVAE", "PredictForceConstants"):
        prop = mantid.api.AlgorithmManager.create(name).getProperty("Device")
        assert prop.value == "cpu" and prop.validator.allowedValues() == ["cpu", "cuda"]


@needs_cuda
@pytest.mark.parametrize("method", ["nelder-mead", "gradient"])
def test_a_fit_on_cuda_matches_the_cpu_fit(spectrum, method):
    kw = {"method": method, "settings": SETTINGS, "max_evaluations": 120, "n_starts": 2, "adam_steps": 10}
    cpu = fit_spectrum(spectrum, **kw)
    gpu = fit_spectrum(spectrum, device="cuda", **kw)
    np.testing.assert_allclose(gpu.force_constants, cpu.force_constants, rtol=0.02, atol=0.05)
    assert abs(gpu.nmse - cpu.nmse) < 0.01 and np.all(np.isfinite(gpu.std))


@needs_cuda
def test_denoising_training_on_cuda(tmp_path, cuda_set):
    """The augmentation draws its noise on the GPU, and the regressor trains there too."""
    assert main(["train", "--data", str(cuda_set), "--output", str(tmp_path / "b"), "--epochs", "2",
                 "--regressor-epochs", "2", "--physics-steps", "0", "--no-progress", "--device", "cuda",
                 "--augment-noise", "0.01", "--augment-background", "0.05"]) == 0
