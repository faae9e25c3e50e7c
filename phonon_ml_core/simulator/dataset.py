"""Simulated training data sets for a material and an experiment: batched simulation, sharded, resumable,
atomic HDF5 output in the conventions §4 layout (the file records its material, experiment, sampling and the
names of the constants).
"""
from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.jsonio import json_default
from phonon_ml_core.data.spectrum import Spectrum, open_hdf5, read_spectrum_group, write_spectrum_group
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.sampling import SampledParameters, SamplingConfig, sample_parameters
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material, get_material

__all__ = ["PER_SPECTRUM", "SampledParameters", "SamplingConfig", "batch_plan", "dataset_provenance",
           "generate_dataset", "merge_shards", "parse_shard", "read_set_head", "sample_parameters", "shard_slice",
           "write_dataset_template", "write_set_layout"]

log = logging.getLogger(__name__)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' → (i, n) with 0 ≤ i < n; None → (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 ≤ i < n")
    return i, n


def shard_slice(n_total: int, shard: tuple[int, int]) -> slice:
    """The contiguous block of global indices that shard (i, n) simulates."""
    i, n = shard
    return slice(i * n_total // n, (i + 1) * n_total // n)


def batch_plan(temperature: np.ndarray, batch_size: int, start: int = 0) -> list[np.ndarray]:
    """The rows of each simulator call of a data set (the ONE batch order, used by ``generate_dataset`` and the
    Dask executor): spectra in order of temperature (stable, so that neighbouring batches share lattice parameters
    and the simulator's |Q|-shell tensors), ``batch_size`` at a time from position ``start`` (a resumed run),
    each batch's rows ascending. Same batches → bit-identical spectra."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = np.argsort(np.asarray(temperature), kind="stable")
    return [np.sort(order[s:s + batch_size]) for s in range(start, order.size, batch_size)]


def dataset_provenance(material: Material, config: SamplingConfig, sim, params: SampledParameters,
                       shard: tuple[int, int], idx: np.ndarray) -> tuple[dict, str]:
    """The provenance (file metadata) of shard ``shard`` (global rows ``idx``) of a data set, and the signature
    that a resumed run must match (provenance + material + experiment, as JSON)."""
    provenance = {"sampling": asdict(config), "sampling_bounds": config.describe_bounds(material),
                  "n_total": int(params.force_constants.shape[0]), "shard": list(shard),
                  "indices": [int(idx[0]), int(idx[-1]) + 1], "n_rejected_unstable": params.n_rejected,
                  "simulator": sim.describe(), "force_constant_names": list(material.names)}
    signature = json.dumps({**provenance, "material": material.to_dict(), "experiment": sim.experiment.to_dict()},
                           sort_keys=True, default=json_default)
    return provenance, signature


def write_dataset_template(f: h5py.File, material: Material, settings: SimulationSettings, sim,
                           params: SampledParameters, idx: np.ndarray, provenance: dict, signature: str) -> None:
    """Write the file of the data-set rows ``idx`` before any spectrum is simulated: the §4 layout with every
    parameter, the provenance and the signature, and an intensity dataset of ``len(idx)`` rows still unwritten
    (zero fill; nothing of the set's size is held in memory). ``completed`` = 0."""
    head = Spectrum(intensity=np.zeros((1, *sim.grid.shape), dtype=np.float32), grid=sim.grid,
                    temperature=params.temperature[idx[:1]], quantity=settings.quantity,
                    normalization="mean" if settings.normalize else "none",
                    force_constants=params.force_constants[idx[:1]], metadata=provenance,
                    instrument=sim.experiment.instrument, sample=material.name, material=material,
                    experiment=sim.experiment)
    write_set_layout(f, head, idx.size, {"temperature": params.temperature[idx],
                                         "force_constants": params.force_constants[idx]})
    f.create_dataset("linewidth", data=params.linewidth[idx]).attrs["meaning"] = "γ, HWHM = γ·E"
    f.create_dataset("index", data=idx)
    f.attrs["signature"] = signature
    f.attrs["completed"] = 0


#: The datasets of the conventions §4 layout that hold one row per spectrum of a set, with their number of
#: dimensions in a set (a file may hold one value for all spectra instead: fewer dimensions).
PER_SPECTRUM = {"intensity": 3, "errors": 3, "temperature": 1, "force_constants": 2, "linewidth": 1}


def write_set_layout(f: h5py.Group, head: Spectrum, n: int, values: dict[str, np.ndarray] | None = None) -> None:
    """Write the set ``head`` (one row standing for all) into ``f`` as a set of ``n`` spectra: its axes and
    attributes as ``write_spectrum_group`` writes them, and its per-spectrum datasets (:data:`PER_SPECTRUM`) with
    the same dtype, chunks and attributes but ``n`` rows — filled from ``values`` where given, else left for the
    caller to write row by row (zero fill). Memory does not grow with ``n``."""
    if head.n_spectra != 1 or not head.is_set:
        raise ValueError("write_set_layout needs a set of one spectrum standing for the rows")
    write_spectrum_group(f, head)
    for key in PER_SPECTRUM:
        if key not in f:
            continue
        old = f[key]
        dtype, shape, chunks, attrs = old.dtype, old.shape, old.chunks, dict(old.attrs)
        del f[key]
        row_shape = shape[len(shape) - (PER_SPECTRUM[key] - 1):] if PER_SPECTRUM[key] > 1 else ()
        new = f.create_dataset(key, shape=(n, *row_shape), dtype=dtype, chunks=chunks)
        new.attrs.update(attrs)
        if values is not None and key in values:
            new[...] = values[key]


def generate_dataset(output: str | os.PathLike, n: int, config: SamplingConfig | None = None,
                     shard: tuple[int, int] = (0, 1), grid: Grid | None = None,
                     settings: SimulationSettings | None = None, batch_size: int = 8,
                     overwrite: bool = False, progress: bool = True, device: str = "cpu", *,
                     material: Material | str | None = None, experiment: Experiment | None = None) -> Path:
    """Simulate a data set of ``n`` spectra of ``material`` (default aluminium) on ``experiment`` (default the
    standard one; ``grid`` replaces its grid) — this shard's part of it — into ``output``.

    ``config`` defaults to the material's sampling ranges. Work goes to ``output + '.partial'`` and is renamed
    onto ``output`` when complete; rerunning the same command after an interruption resumes from the last
    finished batch.
    """
    material = ALUMINIUM if material is None else get_material(material)
    config = SamplingConfig() if config is None else config
    settings = SimulationSettings() if settings is None else settings
    out = check_output_path(output, overwrite)
    partial = out.with_name(out.name + ".partial")
    config.bounds(material)  # wrong-length references and unknown names fail here, before any work
    part = shard_slice(n, shard)
    if n < 1 or part.stop <= part.start:
        raise ValueError(f"shard {shard[0]}/{shard[1]} of {n} spectra is empty: use fewer shards (or n ≥ 1)")
    sim = get_simulator(material, experiment, grid=grid, quantity=settings.quantity, settings=settings,
                        dtype=torch.float32, device=device, normalize=settings.normalize)
    params = sample_parameters(n, config, material=material)
    idx = np.arange(n)[part]
    provenance, signature = dataset_provenance(material, config, sim, params, shard, idx)
    done = _open_partial(partial, signature, discard_mismatch=overwrite)
    if done is None:
        with h5py.File(partial, "w") as f:
            write_dataset_template(f, material, settings, sim, params, idx, provenance, signature)
        done = 0
    log.info("simulating %d %s spectra (%d rejected as unstable while sampling)%s", idx.size, material.name,
             params.n_rejected, f", resuming after {done}" if done else "")
    bar = tqdm(total=idx.size, initial=done, unit="spectra", disable=not progress, desc="simulate")
    position = done
    with torch.no_grad(), h5py.File(partial, "a") as f:
        for rows in batch_plan(params.temperature[idx], batch_size, start=done):
            sel = idx[rows]
            lw = params.linewidth[sel] if config.linewidth_range is not None else None
            y = sim(params.force_constants[sel], params.temperature[sel], linewidth=lw)
            f["intensity"][rows] = y.cpu().numpy().astype(np.float32)
            position += len(rows)
            f.attrs["completed"] = position
            f.flush()
            bar.update(len(rows))
    bar.close()
    os.replace(partial, out)
    return out


def _open_partial(partial: Path, signature: str, discard_mismatch: bool = False) -> int | None:
    """Completed count of a matching partial file; None if there is none. A partial file from other
    settings is an error, or is discarded when ``discard_mismatch`` (--overwrite)."""
    if not partial.exists():
        return None
    try:
        with h5py.File(partial, "r") as f:
            matches = f.attrs.get("signature") == signature
            completed = int(f.attrs["completed"])
        if not matches:
            if not discard_mismatch:
                raise ValueError(f"{partial} is left from a run with different settings: rerun that command to "
                                 "finish it, or pass --overwrite to discard it")
            partial.unlink()
            return None
        return completed
    except OSError:
        log.warning("%s is unreadable (interrupted while writing?); starting again", partial)
        partial.unlink()
        return None


#: Metadata that every shard of one data set shares.
_SHARED_KEYS = ("sampling", "sampling_bounds", "n_total", "simulator", "force_constant_names")


def read_set_head(path: str | os.PathLike) -> tuple[Spectrum, int]:
    """The set in ``path`` cut to its first spectrum (all axes, attributes and metadata, exactly as
    ``Spectrum.from_hdf5`` reads them) and its number of spectra, without loading the set."""
    p = os.fspath(path)
    with open_hdf5(p) as src, h5py.File(io.BytesIO(), "w") as head:
        if "intensity" not in src or src["intensity"].ndim != 3:
            raise ValueError(f"{p} holds no set of spectra (an intensity of shape (N, n_E, n_Q)): merge data "
                             "sets written by generate_dataset / phonon-ml simulate --count")
        for key in src:
            if key in PER_SPECTRUM:
                d = src[key]  # one row; a value that every spectrum shares (a scalar T, (K,) constants) as it is
                row = d[:1] if d.ndim == PER_SPECTRUM[key] else d[()]
                head.create_dataset(key, data=row).attrs.update(dict(d.attrs))
            else:
                src.copy(src[key], head, name=key)
        head.attrs.update(dict(src.attrs))
        return read_spectrum_group(head, source=p), int(src["intensity"].shape[0])


#: Metadata that every shard of one data set shares.
_SHARED_KEYS = ("sampling", "sampling_bounds", "n_total", "simulator", "force_constant_names")

#: Most spectra copied at a time by merge_shards (≈ 28 kB each on a default grid).
MERGE_BLOCK_ROWS = 1024


def merge_shards(paths: list[str | os.PathLike], output: str | os.PathLike, overwrite: bool = False,
                 block_rows: int = MERGE_BLOCK_ROWS) -> Path:
    """Concatenate the shard files of one data set (in index order) into ``output``, atomically, streaming:
    rows are copied ``block_rows`` at a time, shard after shard, so memory does not grow with the set's size.

    Refused: shards of different material, experiment, seed, sampling or simulator settings, and index gaps
    or overlaps (all shards 0/n … n−1/n must be given).
    """
    if not paths:
        raise ValueError("no shard files to merge")
    first, size0 = read_set_head(paths[0])
    sizes, metas, name0 = [size0], [first.metadata], os.fspath(paths[0])
    for path in paths[1:]:  # one head at a time: memory does not grow with the number of shards
        p, size = read_set_head(path)
        for key in _SHARED_KEYS:
            if p.metadata.get(key) != first.metadata.get(key):
                raise ValueError(f"{os.fspath(path)} and {name0} are not shards of one data set: their {key} "
                                 "differ; merge shards made by the same command with different --shard only")
        for spec in ("material", "experiment"):
            a, b = getattr(p, spec), getattr(first, spec)
            if (a is None) != (b is None) or (a is not None and not a.same_as(b)):
                raise ValueError(f"{os.fspath(path)} and {name0} have different {spec}s: merge shards of one "
                                 f"{spec} only")
        Spectrum.stack([first, p])  # the checks of one set: grid, quantity, normalisation
        sizes.append(size)
        metas.append(p.metadata)
    spans = [tuple(m.get("indices", (None, None))) for m in metas]
    if any(s[0] is None for s in spans):
        raise ValueError("a file has no shard indices (metadata 'indices'): merge only files written by "
                         "generate_dataset / phonon-ml simulate --count")
    order = np.argsort([s[0] for s in spans], kind="stable")
    expect = 0
    for i in order:
        start, stop = spans[i]
        if start != expect:
            what = "overlaps the previous shard" if start < expect else f"leaves indices {expect}–{start - 1} out"
            raise ValueError(f"{os.fspath(paths[i])} (indices {start}–{stop - 1}) {what}: give each shard once, "
                             "all of them")
        if sizes[i] != stop - start:
            raise ValueError(f"{os.fspath(paths[i])} holds {sizes[i]} spectra, not the {stop - start} of its "
                             "indices: it is damaged or unfinished; simulate that shard again")
        expect = stop
    n_total = first.metadata.get("n_total")
    if n_total is not None and expect != n_total:
        raise ValueError(f"the shards cover indices 0–{expect - 1} of {n_total}: indices {expect}–{n_total - 1} "
                         "are missing; give all shards")
    head = first if order[0] == 0 else read_set_head(paths[order[0]])[0]
    head = replace(head, metadata=dict(head.metadata))
    head.metadata.pop("indices", None)
    head.metadata["merged_from"] = [os.fspath(paths[i]) for i in order]
    out = check_output_path(output, overwrite)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        write_set_layout(f, head, expect)
        keys = [k for k in PER_SPECTRUM if k in f]
        for i in order:
            _copy_rows(paths[i], f, keys, spans[i][0], block_rows)
    return out


def _copy_rows(path: str | os.PathLike, out: h5py.File, keys: list[str], offset: int, block_rows: int) -> None:
    """Copy the per-spectrum datasets ``keys`` of the shard ``path`` into ``out`` from row ``offset`` on,
    ``block_rows`` rows at a time (values converted to the output's dtypes, as ``Spectrum`` reads them)."""
    with h5py.File(path, "r") as f:
        missing = [k for k in keys if k not in f]
        if missing:
            raise ValueError(f"{os.fspath(path)} lacks {missing}, which the other shards have: it is not a shard of "
                             "this data set")
        n = f["intensity"].shape[0]
        for s in range(0, n, max(1, block_rows)):
            e = min(n, s + block_rows)
            for k in keys:
                d = f[k]
                rows = d[s:e] if d.ndim == PER_SPECTRUM[k] else np.broadcast_to(d[()], (e - s, *out[k].shape[1:]))
                out[k][offset + s:offset + e] = rows
