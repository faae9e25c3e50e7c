"""The Dask executor of data sets: one file, bit-identical to the serial run; resumable; clear errors.

The default executor (a LocalCluster of one worker computing with torch's default threads) writes the default
serial run's file, also after an interruption; other thread counts are recorded in the file and refused on resume.
"""
from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest
import torch

from phonon_ml_core.cli import main
from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset
from phonon_ml_core.simulator.settings import SimulationSettings

distributed = pytest.importorskip("dask.distributed")

SET = ["simulate", "--count", "12", "--seed", "2", "--temperature-range", "20,500", "--linewidth-range", "0,0.05",
       "--mesh-density", "6", "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def scheduler():
    """A LocalCluster of 2 single-threaded worker processes (a cluster's workers; `--executor dask` alone starts
    one worker)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def one_thread():
    """Serial reference runs with one torch thread, as each Dask worker computes (the last bit of a spectrum may
    depend on torch's thread count; docs/scaling.md)."""
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
    (["--threads-per-worker", "2"], "belong to --executor dask"),
    (["--executor", "dask", "--threads-per-worker", "0"], "at least 1"),
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


def test_the_local_cluster_and_its_pool_close_with_the_client():
    """``_client`` without a scheduler holds the LocalCluster it started and the process pool its workers use;
    ``close`` shuts down all three (a closed pool takes no more work)."""
    from dask.distributed import Status

    from phonon_ml_core.simulator import distributed as dist

    conn = dist._client(None, 1)
    assert conn.cluster is conn.client.cluster and conn.pool is not None
    assert conn.client.submit(sum, [1, 2], pure=False).result() == 3  # runs in the pool's spawned process
    conn.close()
    assert conn.client.status == "closed" and conn.cluster.status == Status.closed
    with pytest.raises(RuntimeError, match="shutdown"):
        conn.pool.submit(sum, [1, 2])


def test_close_order_and_a_remote_scheduler_left_running():
    """The client closes first, then the cluster, then the pool (pending work cancelled); for a scheduler this run
    did not start only the client is closed."""
    from phonon_ml_core.simulator import distributed as dist

    calls: list = []

    class Rec:
        def __init__(self, name):
            self.name = name

        def close(self):
            calls.append(self.name)

        def shutdown(self, **kw):
            calls.append((self.name, kw))

    dist._DaskClient(Rec("client"), Rec("cluster"), Rec("pool")).close()
    assert calls == ["client", "cluster", ("pool", {"wait": True, "cancel_futures": True})]
    calls.clear()
    dist._DaskClient(Rec("client")).close()
    assert calls == ["client"]


# 13 spectra in batches of 4: the last batch holds one spectrum, the case where torch's thread count can change
# the last float32 bit (docs/scaling.md; with SET13 and CFG13, 2 vs 1 threads differ by ≤ 1.2e-7 here), so the
# tests below tell the thread counts apart
SET13 = ["simulate", "--count", "13", "--seed", "4", "--temperature-range", "20,500", "--linewidth-range", "0,0.05",
         "--mesh-density", "6", "--batch-size", "4", "--no-progress"]
KW13 = {"settings": SimulationSettings(mesh_density=6), "batch_size": 4, "progress": False}
CFG13 = SamplingConfig(seed=5, temperature_range=(10.0, 400.0), linewidth_range=(0.0, 0.05))


@pytest.fixture
def two_threads():
    """torch with two intra-op threads in this process (a serial run's default on a 2-core machine), restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def local_default(monkeypatch, scheduler):
    """The default (no scheduler) code path, its tasks sent to the module's cluster instead of a new LocalCluster
    (one cluster start less; the real LocalCluster is started by the CLI test)."""
    from phonon_ml_core.simulator import distributed as dist

    monkeypatch.setattr(dist, "_client", lambda address, workers: dist._DaskClient(distributed.Client(scheduler)))


def test_default_local_cluster_writes_the_default_serial_file(tmp_path, two_threads):
    serial, dask = tmp_path / "serial.h5", tmp_path / "dask.h5"
    assert main([*SET13, "--output", str(serial)]) == 0
    assert main([*SET13, "--output", str(dask), "--executor", "dask"]) == 0  # a LocalCluster of one worker
    assert_same_file(serial, dask)
    with h5py.File(dask, "r") as f:
        assert "torch_threads" not in f.attrs  # the serial run's threads: nothing to record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask.h5", "serial.h5"]  # work folder removed


def _stop(i: int) -> None:
    raise KeyboardInterrupt


def test_interrupted_default_run_resumes_to_the_default_serial_file(tmp_path, two_threads, local_default):
    from phonon_ml_core.simulator.distributed import generate_dataset_dask, work_folder

    out = tmp_path / "set.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset_dask(out, 13, CFG13, chunk_spectra=4, on_chunk=_stop, **KW13)
    assert not out.exists() and not list(tmp_path.glob(".set.h5.*"))  # no output, no temporary file left
    kept = {int(p.stem.split("-")[1]) for p in work_folder(out).glob("chunk-*.npy")}
    assert kept and len(kept) < 4  # 4 chunks (4, 4, 4, 1 spectra); the interruption left some undone
    again: list[int] = []
    generate_dataset_dask(out, 13, CFG13, chunk_spectra=4, on_chunk=again.append, **KW13)
    # only missing chunks were simulated (a task that was running when the client stopped may still have finished)
    assert not kept & set(again)
    assert not work_folder(out).exists()
    generate_dataset(tmp_path / "serial.h5", 13, CFG13, **KW13)
    assert_same_file(tmp_path / "serial.h5", out)


def test_other_thread_counts_are_recorded_and_refused_on_resume(tmp_path, two_threads, local_default):
    from phonon_ml_core.simulator.distributed import generate_dataset_dask, task_threads, work_folder

    assert task_threads(None) == 2 and task_threads(None, workers=2) == 1 and task_threads("tcp://x:1") == 1
    assert task_threads(None, threads_per_worker=3) == 3
    out = tmp_path / "one.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset_dask(out, 13, CFG13, chunk_spectra=4, threads_per_worker=1, on_chunk=_stop, **KW13)
    with pytest.raises(ValueError, match="torch threads"):  # a rerun must compute as the finished chunks did
        generate_dataset_dask(out, 13, CFG13, chunk_spectra=4, **KW13)
    generate_dataset_dask(out, 13, CFG13, chunk_spectra=4, threads_per_worker=1, **KW13)
    assert not work_folder(out).exists()
    with h5py.File(out, "r") as f:
        assert int(f.attrs["torch_threads"]) == 1
    torch.set_num_threads(1)
    generate_dataset(tmp_path / "serial1.h5", 13, CFG13, **KW13)
    with h5py.File(tmp_path / "serial1.h5", "r") as a, h5py.File(out, "r") as b:
        assert np.array_equal(a["intensity"][()], b["intensity"][()], equal_nan=True)  # one thread each
