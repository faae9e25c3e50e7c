"""Simulated training data sets for a material and an experiment: batched simulation, sharded, resumable,
atomic HDF5 output in the conventions §4 layout (the file records its material, experiment, sampling and the
names of the constants).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.jsonio import json_default
from phonon_ml_core.data.spectrum import Spectrum, write_spectrum_group
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.sampling import SampledParameters, SamplingConfig, sample_parameters
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material, get_material

__all__ = ["SampledParameters", "SamplingConfig", "generate_dataset", "merge_shards", "parse_shard",
           "sample_parameters", "shard_slice"]

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
    given = None if material is None else get_material(material)  # None: the legacy aluminium physics
    material = ALUMINIUM if given is None else given
    config = SamplingConfig() if config is None else config
    settings = SimulationSettings() if settings is None else settings
    out = check_output_path(output, overwrite)
    partial = out.with_name(out.name + ".partial")
    config.bounds(material)  # wrong-length references and unknown names fail here, before any work
    part = shard_slice(n, shard)
    if n < 1 or part.stop <= part.start:
        raise ValueError(f"shard {shard[0]}/{shard[1]} of {n} spectra is empty: use fewer shards (or n ≥ 1)")
    sim = get_simulator(given, experiment, grid=grid, quantity=settings.quantity, settings=settings,
                        dtype=torch.float32, device=device, normalize=settings.normalize)
    params = sample_parameters(n, config, material=material)
    idx = np.arange(n)[part]
    provenance = {"sampling": asdict(config), "sampling_bounds": config.describe_bounds(material),
                  "n_total": n, "shard": list(shard), "indices": [int(idx[0]), int(idx[-1]) + 1],
                  "n_rejected_unstable": params.n_rejected, "simulator": sim.describe(),
                  "force_constant_names": list(material.names)}
    signature = json.dumps({**provenance, "material": material.to_dict(), "experiment": sim.experiment.to_dict()},
                           sort_keys=True, default=json_default)
    done = _open_partial(partial, signature, discard_mismatch=overwrite)
    if done is None:
        template = Spectrum(intensity=np.zeros((idx.size, *sim.grid.shape), dtype=np.float32), grid=sim.grid,
                            temperature=params.temperature[idx], quantity=settings.quantity,
                            normalization="mean" if settings.normalize else "none",
                            force_constants=params.force_constants[idx], metadata=provenance,
                            instrument=sim.experiment.instrument, sample=material.name, material=material,
                            experiment=sim.experiment)
        with h5py.File(partial, "w") as f:
            write_spectrum_group(f, template)
            f.create_dataset("linewidth", data=params.linewidth[idx]).attrs["meaning"] = "γ, HWHM = γ·E"
            f.create_dataset("index", data=idx)
            f.attrs["signature"] = signature
            f.attrs["completed"] = 0
        done = 0
    log.info("simulating %d %s spectra (%d rejected as unstable while sampling)%s", idx.size, material.name,
             params.n_rejected, f", resuming after {done}" if done else "")
    bar = tqdm(total=idx.size, initial=done, unit="spectra", disable=not progress, desc="simulate")
    # simulate in order of temperature: neighbouring batches then share lattice parameters (and the
    # simulator's |Q|-shell tensors); results go to their own rows
    order = np.argsort(params.temperature[idx], kind="stable")
    with torch.no_grad(), h5py.File(partial, "a") as f:
        for start in range(done, idx.size, batch_size):
            rows = np.sort(order[start:start + batch_size])
            sel = idx[rows]
            lw = params.linewidth[sel] if config.linewidth_range is not None else None
            y = sim(params.force_constants[sel], params.temperature[sel], linewidth=lw)
            f["intensity"][rows] = y.cpu().numpy().astype(np.float32)
            f.attrs["completed"] = start + len(sel)
            f.flush()
            bar.update(len(sel))
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


def merge_shards(paths: list[str | os.PathLike], output: str | os.PathLike, overwrite: bool = False) -> Path:
    """Concatenate the shard files of one data set (in index order) into ``output``, atomically.

    Refused: shards of different material, experiment, seed, sampling or simulator settings, and index gaps
    or overlaps (all shards 0/n … n−1/n must be given).
    """
    if not paths:
        raise ValueError("no shard files to merge")
    parts = [Spectrum.from_hdf5(p) for p in paths]
    first, name0 = parts[0], os.fspath(paths[0])
    for p, path in zip(parts[1:], paths[1:]):
        for key in _SHARED_KEYS:
            if p.metadata.get(key) != first.metadata.get(key):
                raise ValueError(f"{os.fspath(path)} and {name0} are not shards of one data set: their {key} "
                                 "differ; merge shards made by the same command with different --shard only")
        for spec in ("material", "experiment"):
            a, b = getattr(p, spec), getattr(first, spec)
            if (a is None) != (b is None) or (a is not None and not a.same_as(b)):
                raise ValueError(f"{os.fspath(path)} and {name0} have different {spec}s: merge shards of one "
                                 f"{spec} only")
    spans = [tuple(p.metadata.get("indices", (None, None))) for p in parts]
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
        expect = stop
    n_total = first.metadata.get("n_total")
    if n_total is not None and expect != n_total:
        raise ValueError(f"the shards cover indices 0–{expect - 1} of {n_total}: indices {expect}–{n_total - 1} "
                         "are missing; give all shards")
    merged = Spectrum.stack([parts[i] for i in order])
    merged.metadata = dict(parts[order[0]].metadata)
    merged.metadata.pop("indices", None)
    merged.metadata["merged_from"] = [os.fspath(paths[i]) for i in order]
    out = check_output_path(output, overwrite)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        write_spectrum_group(f, merged)
    return out
