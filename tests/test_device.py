"""Device choice: --device / device= / the Mantid Device property; one check (data.validation.check_device) gives
the clear error where a device is missing; CUDA runs are compared with the CPU when a GPU is present."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from device_support import CUDA, cuda_set_fixture, needs_cuda, without_cuda  # noqa: F401
from mantid_standin.harness import mantid_fixture  # noqa: F401
from phonon_ml_core.cli import main


@without_cuda
@pytest.mark.parametrize("command", [
    ["simulate", "--count", "4", "--mesh-density", "6"],
    ["train", "--data", "DATA", "--epochs", "1"],
])
def test_cuda_without_cuda_is_refused_before_work(tmp_path, capsys, command):
    data = tmp_path / "set.h5"
    data.write_bytes(b"")
    args = [a.replace("DATA", str(data)) for a in command]
    assert main([*args, "--output", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.h5"]


@without_cuda
def test_core_functions_refuse_a_missing_device(tmp_path):
    from phonon_ml_core.learn.setup import train_to_bundle
    from phonon_ml_core.prediction.predict import predict_spectra

    with pytest.raises(ValueError, match="CUDA is not available"):
        train_to_bundle(tmp_path / "none.h5", tmp_path / "b", {}, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        predict_spectra(object(), [], device="cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        predict_spectra(object(), [], device="gpu")


def test_mantid_algorithms_have_a_device_property(mantid):
    from phonon_ml_core.mantid_support.checks import device_problem

    for name in ("SimulatePowderINS", "TrainPhononVAE", "PredictForceConstants"):
        alg = mantid.api.AlgorithmManager.create(name)
        prop = alg.getProperty("Device")
        assert prop.value == "cpu" and prop.validator.allowedValues() == ["cpu", "cuda"]
    assert device_problem("cpu") is None
    if not CUDA:
        assert "Device=cpu" in device_problem("cuda") and "CUDA is not available" in device_problem("cuda")
        alg = mantid.api.AlgorithmManager.create("SimulatePowderINS")
        alg.setProperty("Device", "cuda")
        assert "CUDA is not available" in alg.validateInputs()["Device"]


def test_training_loop_on_an_explicit_cpu_device_is_unchanged():
    from phonon_ml_core.learn.configs import StageConfig
    from phonon_ml_core.learn.loop import fit

    def run(**kw):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        x = torch.randn(20, 3, generator=torch.Generator().manual_seed(1))
        loss = lambda m, b, g: {"loss": torch.mean((m(b[0]) - b[0].sum(1, keepdim=True)) ** 2)}  # noqa: E731
        fit(model, loss, (x,), None, StageConfig(epochs=3, batch_size=6), 0.01, stage="t", seed=1, progress=False,
            **kw)
        return model.weight.detach().clone()
    assert torch.equal(run(), run(device="cpu"))


@needs_cuda
def test_simulator_on_cuda_matches_cpu():
    from phonon_ml_core.simulator.factory import get_simulator
    from phonon_ml_core.specs import ALUMINIUM

    fc = np.array(ALUMINIUM.reference_constants)[None]
    cpu = get_simulator(ALUMINIUM, None, dtype=torch.float64, device="cpu")(fc, 300.0)[0].numpy()
    gpu = get_simulator(ALUMINIUM, None, dtype=torch.float64, device="cuda")(fc, 300.0)[0].cpu().numpy()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-7, atol=1e-9, equal_nan=True)


@needs_cuda
def test_train_and_predict_on_cuda(tmp_path, cuda_set):
    data = cuda_set
    assert main(["train", "--data", str(data), "--output", str(tmp_path / "b"), "--epochs", "2",
                 "--regressor-epochs", "2", "--physics-steps", "0", "--no-progress", "--device", "cuda"]) == 0
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.prediction.predict import predict_spectra, resolve_bundle

    bundle = resolve_bundle(tmp_path / "b")
    spectra = list(Spectrum.from_hdf5(data))[:2]
    on_gpu = predict_spectra(bundle, spectra, n_samples=50, device="cuda")
    on_cpu = predict_spectra(bundle, spectra, n_samples=50)
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a["force_constants"], b["force_constants"])
        assert abs(a["nmse"] - b["nmse"]) < 1e-4
