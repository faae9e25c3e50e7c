"""The Dask executor of data sets: one file, bit-identical to the serial run; resumable; clear errors."""
from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from phonon_ml_core.cli import main
from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset
from phonon_ml_core.simulator.settings import SimulationSettings

distributed = pytest.importorskip("dask.distributed")

SET = ["simulate", "--count", "12", "--seed", "2", "--temperature-range", "20,500", "--linewidth-range", "0,0.05",
       "--mesh-density", "6", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster of 2 single-threaded worker processes (what `--executor dask` starts by default)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def one_thread():
    """Serial reference runs with one torch thread, as each Dask worker computes (the last bit of a spectrum may
    depend on torch's thread count; docs/scaling.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_same_file(a, b) -> None:
    """Every dataset and root attribute of the HDF5 files a and b equal, bit for bit (NaN = NaN)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb) and sorted(fa.attrs) == sorted(fb.attrs)
        for k in fa:
            x, y = fa[k][()], fb[k][()]
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k
        for k in fa.attrs:
            assert str(fa.attrs[k]) == str(fb.attrs[k]), k


def test_dask_cli_writes_the_serial_file(tmp_path, scheduler, one_thread):
    serial, dask = tmp_path / "serial.h5", tmp_path / "dask.h5"
    assert main([*SET, "--output", str(serial)]) == 0
    assert main([*SET, "--output", str(dask), "--executor", "dask", "--scheduler", scheduler]) == 0
    assert_same_file(serial, dask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.h5", "serial.h5"]  # work folder removed


def test_an_interrupted_dask_run_resumes_with_its_finished_chunks(tmp_path, scheduler, one_thread):
    from phonon_ml_core.simulator.distributed import generate_dataset_dask, work_folder

    kw = {"settings": SimulationSettings(mesh_density=6), "batch_size": 3, "progress": False}
    cfg = SamplingConfig(seed=9, temperature_range=(10.0, 300.0))
    out = tmp_path / "set.h5"
    first: list[int] = []

    def stop(i: int) -> None:
        first.append(i)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset_dask(out, 10, cfg, scheduler=scheduler, chunk_spectra=3, on_chunk=stop, **kw)
    assert not out.exists()
    kept = sorted(p.name for p in work_folder(out).glob("chunk-*.npy"))
    assert len(kept) >= 1
    # other settings do not reuse the folder
    with pytest.raises(ValueError, match="different settings"):
        generate_dataset_dask(out, 10, SamplingConfig(seed=10), scheduler=scheduler, chunk_spectra=3, **kw)
    again: list[int] = []
    generate_dataset_dask(out, 10, cfg, scheduler=scheduler, chunk_spectra=3, on_chunk=again.append, **kw)
    assert len(again) < 4 and first[0] not in again  # 4 chunks of one batch of ≤ 3 spectra: some reused
    assert not work_folder(out).exists()
    generate_dataset(tmp_path / "serial.h5", 10, cfg, **kw)
    assert_same_file(tmp_path / "serial.h5", out)


@pytest.mark.parametrize("extra, message", [
    (["--executor", "dask", "--shard", "0/2"], "drop --shard"),
    (["--scheduler", "tcp://127.0.0.1:1"], "belong to --executor dask"),
    (["--executor", "dask", "--workers", "0"], "at least 1"),
])
def test_dask_flag_errors(tmp_path, capsys, extra, message):
    assert main([*SET, "--output", str(tmp_path / "x.h5"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_missing_dask_names_the_extra(monkeypatch):
    from phonon_ml_core.simulator import distributed as dist

    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ValueError, match=r"phonon-ml\[scale\]"):
        dist._client(None, 1)
