"""Simulated data sets on a Dask cluster: the serial run's batches fanned out, one file written, resumable.

:func:`generate_dataset_dask` gives the same file as :func:`~phonon_ml_core.simulator.dataset.generate_dataset`
with the same arguments (every dataset and attribute identical, bit for bit, when each task uses the serial run's
torch thread count): the parameters are drawn once on the client, the serial run's batches (in the same order of
temperature) are grouped into chunks, and each chunk is simulated by a Dask worker into ``OUTPUT.dask-work/`` next
to the output. While the workers compute, the client copies every finished chunk into the output (one HDF5 chunk
per spectrum, written directly). A rerun after an interruption reuses the finished chunks; the folder is removed
once the output is written (atomically).

Sizing. Without a scheduler, a LocalCluster of ONE worker whose tasks run in the main thread of one spawned
process (:func:`_client`) with torch's default threads — the serial run's arithmetic, so the file equals the
default serial file; on the 2-core development machine two
single-threaded workers were 1.75× slower than one process with two threads (docs/scaling.md). ``workers`` and
``threads_per_worker`` choose otherwise. With a scheduler, each task uses one torch thread (the cluster's workers
bring the parallelism), and the file records the thread count (``torch_threads``) whenever it differs from this
process's (a serial run's) own.

Dask is an optional dependency (``pip install "phonon-ml[scale]"``), imported only here and only when used.
On a cluster the work folder must be on a file system that the workers and the client share.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.data.jsonio import write_json
from phonon_ml_core.simulator.dataset import batch_plan, dataset_provenance, write_dataset_template
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.sampling import SamplingConfig, sample_parameters
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material, get_material
from phonon_ml_core.specs.grid import Grid

__all__ = ["DEFAULT_CHUNK_SPECTRA", "DEFAULT_LOCAL_WORKERS", "REMOTE_TASK_THREADS", "generate_dataset_dask",
           "task_threads", "work_folder"]

log = logging.getLogger(__name__)

#: Most spectra one Dask task simulates (a chunk is the unit of resumption; smaller chunks balance better).
DEFAULT_CHUNK_SPECTRA = 2048

#: Fewest chunks a data set is split into (when it has enough batches): the load spreads over the workers.
MIN_CHUNKS = 16

#: Worker processes of the LocalCluster by default: one, computing with all of torch's threads (measured fastest
#: on one machine, and the serial run's arithmetic; docs/scaling.md).
DEFAULT_LOCAL_WORKERS = 1

#: torch threads of each task on a remote cluster (``scheduler`` given) unless told otherwise: one per Dask thread.
REMOTE_TASK_THREADS = 1


#: What to install when Dask is missing.
INSTALL_HINT = 'pip install "phonon-ml[scale]" (or pip install "dask[distributed]")'


def work_folder(output: str | os.PathLike) -> Path:
    """Where the finished chunks of a Dask run of ``output`` wait for the merge (beside the output)."""
    out = Path(output)
    return out.with_name(out.name + ".dask-work")


def task_threads(scheduler: str | None, workers: int | None = None, threads_per_worker: int | None = None) -> int:
    """torch threads each Dask task computes with: ``threads_per_worker`` when given; on a remote cluster
    :data:`REMOTE_TASK_THREADS`; on a LocalCluster this process's torch threads (a serial run's: OMP_NUM_THREADS
    or the cores) shared among its ``workers`` processes (default :data:`DEFAULT_LOCAL_WORKERS`), at least one."""
    if threads_per_worker is not None:
        return threads_per_worker
    if scheduler is not None:
        return REMOTE_TASK_THREADS
    return max(1, torch.get_num_threads() // (workers or DEFAULT_LOCAL_WORKERS))


def _require_dask() -> None:
    """ValueError naming the install command when Dask's distributed scheduler is missing."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise ValueError(f"--executor dask needs Dask: {INSTALL_HINT}") from None


@dataclass
class _DaskClient:
    """A Dask client and what this run started for it: the LocalCluster and the process pool its workers hand their
    tasks to (both None for a scheduler that was already running). :meth:`close` shuts down what it holds."""

    client: Any                              # dask.distributed.Client
    cluster: Any | None = None               # dask.distributed.LocalCluster started by this run
    pool: ProcessPoolExecutor | None = None  # the LocalCluster's executor

    def close(self) -> None:
        """Close the client, then the LocalCluster and its pool when this run started them (pending tasks are
        cancelled)."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _client(scheduler: str | None, workers: int | None) -> _DaskClient:
    """A Dask client of the scheduler at ``scheduler``, or of a LocalCluster of ``workers`` workers (default
    :data:`DEFAULT_LOCAL_WORKERS`), each running one task at a time, held with what this run started
    (:class:`_DaskClient`; close it with its ``close``); ValueError naming the fix when Dask is missing or the
    scheduler unreachable.

    The LocalCluster's workers live in this process and hand their tasks to a pool of ``workers`` spawned processes
    (Dask's documented ``Worker(executor=...)``), so that every task runs in the **main thread** of its process:
    Dask's own workers run tasks in pool threads, where the simulator with two torch threads ran 1.6–2× slower
    than in a main thread (docs/scaling.md). The pool's processes get this process's environment as it is (no
    nanny: its MALLOC_TRIM_THRESHOLD_=65536 made the simulator 3.5× slower).
    """
    _require_dask()
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return _DaskClient(Client(scheduler, timeout="20s"))
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start it (`dask scheduler`) "
                             "and its workers, or omit --scheduler for a cluster on this machine") from None
    n = workers or DEFAULT_LOCAL_WORKERS
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=False, dashboard_address=None,
                               executor=pool)
    except Exception:
        pool.shutdown(cancel_futures=True)
        raise
    return _DaskClient(Client(cluster), cluster, pool)


def _simulate_chunk(path: str, rows: list[np.ndarray], force_constants: np.ndarray, temperature: np.ndarray,
                    linewidth: np.ndarray | None, sim_args: dict, threads: int) -> str:
    """Dask task: simulate the batches ``rows`` (global row indices) with ``threads`` torch threads and save
    their spectra (float32, in the order of the concatenated rows) to ``path`` atomically. Runs on a worker."""
    torch.set_num_threads(threads)
    sim = get_simulator(**sim_args)
    out = np.empty((len(force_constants), *sim.grid.shape), dtype=np.float32)
    offset = 0
    with torch.no_grad():
        for r in rows:
            sel = slice(offset, offset + len(r))
            lw = None if linewidth is None else linewidth[sel]
            out[sel] = sim(force_constants[sel], temperature[sel], linewidth=lw).cpu().numpy()
            offset += len(r)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        np.save(f, out)
    return path


def generate_dataset_dask(output: str | os.PathLike, n: int, config: SamplingConfig | None = None,
                          grid: Grid | None = None, settings: SimulationSettings | None = None, batch_size: int = 8,
                          overwrite: bool = False, progress: bool = True, device: str = "cpu", *,
                          material: Material | str | None = None, experiment: Experiment | None = None,
                          scheduler: str | None = None, workers: int | None = None,
                          threads_per_worker: int | None = None, chunk_spectra: int = DEFAULT_CHUNK_SPECTRA,
                          on_chunk: Callable[[int], None] | None = None) -> Path:
    """The data set of :func:`~phonon_ml_core.simulator.dataset.generate_dataset` (same arguments, same file),
    simulated on a Dask cluster.

    ``scheduler``: address of a running Dask scheduler (``tcp://host:8786``); None = a LocalCluster of
    ``workers`` processes (default one). ``threads_per_worker``: torch threads per task (default
    :func:`task_threads`: the serial run's on a one-worker LocalCluster, so the file equals the default serial
    file; one on a remote cluster); a count other than this process's own is recorded in the file
    (``torch_threads``: the last float32 bit may depend on it). ``chunk_spectra``: most spectra per task.
    Finished chunks wait in :func:`work_folder` and are reused by a rerun of the same command; a work folder from
    other settings is refused (or discarded with ``overwrite``). ``on_chunk(i)`` sees each chunk that finishes in
    this run (a test may raise from it to simulate an interruption).
    """
    material = ALUMINIUM if material is None else get_material(material)
    config = SamplingConfig() if config is None else config
    settings = SimulationSettings() if settings is None else settings
    if batch_size < 1 or chunk_spectra < 1:
        raise ValueError("batch_size and chunk_spectra must be at least 1")
    if n < 1:
        raise ValueError("a data set needs n ≥ 1 spectra")
    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    out = check_output_path(output, overwrite)
    config.bounds(material)  # wrong-length references and unknown names fail here, before any work
    _require_dask()
    threads = task_threads(scheduler, workers, threads_per_worker)
    sim_args = {"material": material, "experiment": experiment, "grid": grid, "quantity": settings.quantity,
                "settings": settings, "dtype": torch.float32, "device": device, "normalize": settings.normalize}
    # the cluster starts, and its workers build their simulators, while this process draws the parameters
    starting = ThreadPoolExecutor(1, thread_name_prefix="dask-start")
    client_future = starting.submit(_ready_client, scheduler, workers, sim_args, threads)
    starting.shutdown(wait=False)
    conn: _DaskClient | None = None
    try:
        sim = get_simulator(**sim_args)
        params = sample_parameters(n, config, material=material)
        # the provenance and signature of a serial, unsharded run: the file is that run's file
        provenance, signature = dataset_provenance(material, config, sim, params, (0, 1), np.arange(n))
        batches = batch_plan(params.temperature, batch_size)
        # about 16+ chunks whatever the cluster's size (the plan must not depend on it: a rerun on another cluster
        # reuses the finished chunks), each at most chunk_spectra, whole batches
        per_chunk = max(1, min(chunk_spectra, math.ceil(n / MIN_CHUNKS)) // batch_size)
        chunks = [batches[i:i + per_chunk] for i in range(0, len(batches), per_chunk)]
        plan = {"signature": signature, "batch_size": batch_size, "n_chunks": len(chunks), "torch_threads": threads}
        work = _prepare_work_folder(work_folder(out.resolve()), plan, overwrite)
        paths = [work / f"chunk-{i:06d}.npy" for i in range(len(chunks))]
        todo = [i for i, p in enumerate(paths) if not p.exists()]
        if len(todo) < len(chunks):
            log.info("reusing %d finished chunks of %d in %s", len(chunks) - len(todo), len(chunks), work)
        task = {"params": params, "linewidth": config.linewidth_range is not None, "sim_args": sim_args,
                "threads": threads}
        conn = client_future.result()
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            futures = _submit(conn.client, todo, chunks, paths, task)  # computed while the template is written
            write_dataset_template(f, material, settings, sim, params, np.arange(n), provenance, signature)
            if threads != torch.get_num_threads():
                f.attrs["torch_threads"] = threads
            copy = _ChunkCopier(f["intensity"])
            for i in sorted(set(range(len(chunks))) - set(todo)):
                copy(chunks[i], paths[i])
            _collect(futures, chunks, paths, copy, progress, on_chunk)
            f.attrs["completed"] = n
    finally:
        if conn is None:  # failed before the cluster was needed: wait for it to start, then close it
            try:
                conn = client_future.result()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                conn = None
        if conn is not None:
            conn.close()
    shutil.rmtree(work, ignore_errors=True)
    return out


def _ready_client(scheduler: str | None, workers: int | None, sim_args: dict, threads: int) -> _DaskClient:
    """:func:`_client`, its workers with their simulator built (``get_simulator`` caches it per process): on a
    LocalCluster one warm-up task per pool process, on a remote cluster on every worker."""
    conn = _client(scheduler, workers)
    client = conn.client
    try:
        if scheduler is None:
            n = workers or DEFAULT_LOCAL_WORKERS
            client.gather([client.submit(_build_simulator, sim_args, threads, pure=False) for _ in range(n)])
        else:
            client.run(_build_simulator, sim_args, threads)
    except Exception:
        conn.close()
        raise
    return conn


def _build_simulator(sim_args: dict, threads: int) -> None:
    """On each worker, before the first chunk: the simulator of the run, built with the run's torch threads."""
    torch.set_num_threads(threads)
    get_simulator(**sim_args)


def _prepare_work_folder(work: Path, plan: dict, overwrite: bool) -> Path:
    """The work folder of this run, created or checked: one left by other settings (``plan``: signature, batch
    size, chunks, torch threads) is an error (or is discarded when ``overwrite``)."""
    plan_file = work / "plan.json"
    if work.exists():
        try:
            same = json.loads(plan_file.read_text(encoding="utf-8")) == plan
        except (OSError, ValueError):
            same = False
        if not same:
            if not overwrite:
                raise ValueError(f"{work} is left from a Dask run with different settings (sampling, batch size, "
                                 "chunks or torch threads per task): rerun that command to finish it, or pass "
                                 "--overwrite to discard it")
            shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    if not plan_file.exists():
        write_json(plan_file, plan)
    return work


def _submit(client, todo: list[int], chunks: list[list[np.ndarray]], paths: list[Path], task: dict) -> dict:
    """Submit the chunks ``todo`` (future → chunk index); only each chunk's own parameters travel to the worker,
    and only the path of its spectra comes back."""
    futures = {}
    params = task["params"]
    for i in todo:
        rows = np.concatenate(chunks[i])
        lw = params.linewidth[rows] if task["linewidth"] else None
        fut = client.submit(_simulate_chunk, os.fspath(paths[i]), chunks[i], params.force_constants[rows],
                            params.temperature[rows], lw, task["sim_args"], task["threads"], pure=False)
        futures[fut] = i
    return futures


def _collect(futures: dict, chunks: list[list[np.ndarray]], paths: list[Path], copy: _ChunkCopier,
             progress: bool, on_chunk: Callable[[int], None] | None) -> None:
    """Copy each chunk into the output as soon as its task finishes (while the workers compute the others)."""
    if not futures:
        return
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    total = sum(sum(len(r) for r in chunks[i]) for i in futures.values())
    with tqdm(total=total, unit="spectra", disable=not progress, desc="simulate (dask)") as bar:
        for fut in as_completed(futures):
            fut.result()
            i = futures.pop(fut)
            copy(chunks[i], paths[i])
            bar.update(sum(len(r) for r in chunks[i]))
            if on_chunk is not None:
                on_chunk(i)


class _ChunkCopier:
    """Writes a chunk file's spectra into the output's intensity rows. Each spectrum is one HDF5 chunk of the
    set's layout (``write_set_layout``: chunks of one row, no filter), so its bytes are written directly — 10–20×
    faster than h5py's row selection (measured: 0.05 vs 1.1 s for 2,048 spectra) and the same values; any other
    layout falls back to row writes."""

    def __init__(self, intensity: h5py.Dataset):
        self.dset = intensity
        self.direct = (intensity.chunks == (1, *intensity.shape[1:]) and intensity.compression is None
                       and not intensity.shuffle and not intensity.fletcher32 and intensity.scaleoffset is None)

    def __call__(self, batches: list[np.ndarray], path: Path) -> None:
        rows = np.concatenate(batches)
        data = np.load(path, mmap_mode="r")
        if data.shape != (rows.size, *self.dset.shape[1:]):
            raise ValueError(f"{path} holds spectra of shape {data.shape}, not the {rows.size} rows of its chunk: "
                             "delete the work folder and rerun")
        if not self.direct:
            order = np.argsort(rows)
            self.dset[rows[order]] = data[order]
            return
        tail = (0,) * (self.dset.ndim - 1)
        for row, spectrum in zip(rows, data):
            self.dset.id.write_direct_chunk((int(row), *tail), np.ascontiguousarray(spectrum, self.dset.dtype))
