"""Simulated data sets on a Dask cluster: the serial run's batches fanned out, one file written, resumable.

:func:`generate_dataset_dask` gives the same file as :func:`~phonon_ml_core.simulator.dataset.generate_dataset`
with the same arguments (every dataset and attribute identical, bit for bit): the parameters are drawn once on
the client, the serial run's batches (in the same order of temperature) are grouped into chunks, and each chunk
is simulated by a Dask worker into ``OUTPUT.dask-work/`` next to the output. A rerun after an interruption
reuses the finished chunks; the folder is removed once the output is written (atomically).

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
from pathlib import Path

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

__all__ = ["DEFAULT_CHUNK_SPECTRA", "generate_dataset_dask", "work_folder"]

log = logging.getLogger(__name__)

#: Most spectra one Dask task simulates (a chunk is the unit of resumption; smaller chunks balance better).
DEFAULT_CHUNK_SPECTRA = 2048

#: Fewest chunks a data set is split into (when it has enough batches): the load spreads over the workers.
MIN_CHUNKS = 16

#: What to install when Dask is missing.
INSTALL_HINT = 'pip install "phonon-ml[scale]" (or pip install "dask[distributed]")'


def work_folder(output: str | os.PathLike) -> Path:
    """Where the finished chunks of a Dask run of ``output`` wait for the merge (beside the output)."""
    out = Path(output)
    return out.with_name(out.name + ".dask-work")


def _client(scheduler: str | None, workers: int | None):
    """A Dask client of the scheduler at ``scheduler``, or of a LocalCluster of ``workers`` single-threaded
    processes (default: this machine's cores); ValueError naming the fix when Dask is missing or unreachable."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ValueError(f"--executor dask needs Dask: {INSTALL_HINT}") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start it (`dask scheduler`) "
                             "and its workers, or omit --scheduler for a cluster on this machine") from None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def _simulate_chunk(path: str, rows: list[np.ndarray], force_constants: np.ndarray, temperature: np.ndarray,
                    linewidth: np.ndarray | None, sim_args: dict) -> str:
    """Dask task: simulate the batches ``rows`` (global row indices) and save their spectra (float32, in the
    order of the concatenated rows) to ``path`` atomically. Runs on a worker, one torch thread."""
    torch.set_num_threads(1)
    sim = get_simulator(**sim_args)
    out = []
    offset = 0
    with torch.no_grad():
        for r in rows:
            sel = slice(offset, offset + len(r))
            lw = None if linewidth is None else linewidth[sel]
            out.append(sim(force_constants[sel], temperature[sel], linewidth=lw).cpu().numpy().astype(np.float32))
            offset += len(r)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        np.save(f, np.concatenate(out))
    return path


def generate_dataset_dask(output: str | os.PathLike, n: int, config: SamplingConfig | None = None,
                          grid: Grid | None = None, settings: SimulationSettings | None = None, batch_size: int = 8,
                          overwrite: bool = False, progress: bool = True, device: str = "cpu", *,
                          material: Material | str | None = None, experiment: Experiment | None = None,
                          scheduler: str | None = None, workers: int | None = None,
                          chunk_spectra: int = DEFAULT_CHUNK_SPECTRA,
                          on_chunk: Callable[[int], None] | None = None) -> Path:
    """The data set of :func:`~phonon_ml_core.simulator.dataset.generate_dataset` (same arguments, same file),
    simulated on a Dask cluster.

    ``scheduler``: address of a running Dask scheduler (``tcp://host:8786``); None = a LocalCluster of
    ``workers`` single-threaded processes (default: the machine's cores). ``chunk_spectra``: most spectra per
    task. Finished chunks wait in :func:`work_folder` and are reused by a rerun of the same command; a work
    folder from other settings is refused (or discarded with ``overwrite``). ``on_chunk(i)`` sees each chunk
    that finishes in this run (a test may raise from it to simulate an interruption).
    """
    material = ALUMINIUM if material is None else get_material(material)
    config = SamplingConfig() if config is None else config
    settings = SimulationSettings() if settings is None else settings
    if batch_size < 1 or chunk_spectra < 1:
        raise ValueError("batch_size and chunk_spectra must be at least 1")
    if n < 1:
        raise ValueError("a data set needs n ≥ 1 spectra")
    out = check_output_path(output, overwrite)
    config.bounds(material)  # wrong-length references and unknown names fail here, before any work
    sim_args = {"material": material, "experiment": experiment, "grid": grid, "quantity": settings.quantity,
                "settings": settings, "dtype": torch.float32, "device": device, "normalize": settings.normalize}
    sim = get_simulator(**sim_args)
    params = sample_parameters(n, config, material=material)
    # the provenance and signature of a serial, unsharded run: the file is that run's file
    provenance, signature = dataset_provenance(material, config, sim, params, (0, 1), np.arange(n))
    batches = batch_plan(params.temperature, batch_size)
    # about 16+ chunks whatever the cluster's size (the plan must not depend on it: a rerun on another cluster
    # reuses the finished chunks), each at most chunk_spectra, whole batches
    per_chunk = max(1, min(chunk_spectra, math.ceil(n / MIN_CHUNKS)) // batch_size)
    chunks = [batches[i:i + per_chunk] for i in range(0, len(batches), per_chunk)]
    work = _prepare_work_folder(work_folder(out.resolve()), signature, batch_size, len(chunks), overwrite)
    paths = [work / f"chunk-{i:06d}.npy" for i in range(len(chunks))]
    todo = [i for i, p in enumerate(paths) if not p.exists()]
    if len(todo) < len(chunks):
        log.info("reusing %d finished chunks of %d in %s", len(chunks) - len(todo), len(chunks), work)
    if todo:
        _run_chunks(todo, chunks, paths, params, config, sim_args, scheduler, workers, progress, on_chunk)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        write_dataset_template(f, material, settings, sim, params, np.arange(n), provenance, signature)
        for chunk, path in zip(chunks, paths):
            rows = np.concatenate(chunk)
            data = np.load(path)
            order = np.argsort(rows)
            f["intensity"][rows[order]] = data[order]
        f.attrs["completed"] = n
    shutil.rmtree(work, ignore_errors=True)
    return out


def _prepare_work_folder(work: Path, signature: str, batch_size: int, n_chunks: int, overwrite: bool) -> Path:
    """The work folder of this run, created or checked: one left by other settings is an error (or is discarded
    when ``overwrite``)."""
    plan = {"signature": signature, "batch_size": batch_size, "n_chunks": n_chunks}
    plan_file = work / "plan.json"
    if work.exists():
        try:
            same = json.loads(plan_file.read_text(encoding="utf-8")) == plan
        except (OSError, ValueError):
            same = False
        if not same:
            if not overwrite:
                raise ValueError(f"{work} is left from a Dask run with different settings: rerun that command to "
                                 "finish it, or pass --overwrite to discard it")
            shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    if not plan_file.exists():
        write_json(plan_file, plan)
    return work


def _run_chunks(todo: list[int], chunks: list[list[np.ndarray]], paths: list[Path], params, config: SamplingConfig,
                sim_args: dict, scheduler: str | None, workers: int | None, progress: bool,
                on_chunk: Callable[[int], None] | None) -> None:
    """Simulate the chunks ``todo`` on the Dask cluster, each into its path."""
    from tqdm.auto import tqdm

    client = _client(scheduler, workers)
    try:
        from dask.distributed import as_completed

        futures = {}
        for i in todo:
            rows = np.concatenate(chunks[i])
            lw = params.linewidth[rows] if config.linewidth_range is not None else None
            fut = client.submit(_simulate_chunk, os.fspath(paths[i]), chunks[i], params.force_constants[rows],
                                params.temperature[rows], lw, sim_args, pure=False)
            futures[fut] = i
        with tqdm(total=sum(sum(len(r) for r in chunks[i]) for i in todo), unit="spectra", disable=not progress,
                  desc="simulate (dask)") as bar:
            for fut in as_completed(futures):
                fut.result()
                i = futures[fut]
                bar.update(sum(len(r) for r in chunks[i]))
                if on_chunk is not None:
                    on_chunk(i)
    finally:
        cluster = client.cluster if scheduler is None else None
        client.close()
        if cluster is not None:
            cluster.close()
