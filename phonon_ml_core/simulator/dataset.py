"""Simulated training data sets: sampling force constants, batched simulation, sharded, resumable,
atomic HDF5 output in the conventions §4 layout.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from phonon_ml_core.physics.units import AL_REFERENCE_FC, FORCE_CONSTANT_NAMES
from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.grid import Grid, standard_grid
from phonon_ml_core.physics.bvk import BvKModel, stability_check
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
from phonon_ml_core.data.spectrum import Spectrum, write_spectrum_group

log = logging.getLogger(__name__)


@dataclass
class SamplingConfig:
    """How force constants and nuisance parameters are drawn.

    Attributes:
        reference: reference constants, N/m (order of the model's names).
        relative_range: each constant uniform in [lo, hi] × reference (the study's rule: 0.5–1.5).
        absolute_ranges: constants sampled in an absolute range instead, N/m (default 2YY in [−1, 1]).
        temperature: K, used when ``temperature_range`` is None.
        temperature_range: (lo, hi) K, uniform, a nuisance variation (lattice parameter follows a(T)).
        linewidth_range: (lo, hi) of γ (HWHM = γ·E), uniform; None = no intrinsic linewidth.
        seed: random seed (the whole set is reproducible from it, whatever the sharding).
    """

    reference: list[float] = field(default_factory=lambda: AL_REFERENCE_FC.tolist())
    relative_range: tuple[float, float] = (0.5, 1.5)
    absolute_ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: {"2YY": (-1.0, 1.0)})
    temperature: float = 300.0
    temperature_range: tuple[float, float] | None = None
    linewidth_range: tuple[float, float] | None = None
    seed: int = 0

    def bounds(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper sampling bounds per constant, N/m."""
        ref = np.asarray(self.reference, dtype=float)
        if ref.size != len(names):
            raise ValueError(f"{ref.size} reference constants for {len(names)} names {names}")
        lo, hi = np.sort(np.stack([ref * self.relative_range[0], ref * self.relative_range[1]]), axis=0)
        for name, (a, b) in self.absolute_ranges.items():
            if name not in names:
                raise ValueError(f"absolute range for unknown constant {name!r}; known: {names}")
            lo[names.index(name)], hi[names.index(name)] = min(a, b), max(a, b)
        return lo, hi


@dataclass
class SampledParameters:
    """Per-spectrum inputs of a data set."""

    force_constants: np.ndarray  # (N, K) N/m
    temperature: np.ndarray      # (N,) K
    linewidth: np.ndarray        # (N,) γ
    n_rejected: int              # unstable draws rejected


def sample_parameters(n: int, config: SamplingConfig, model: BvKModel | None = None) -> SampledParameters:
    """Draw ``n`` stable force-constant sets (rejecting unstable ones) and nuisance parameters."""
    if n < 1:
        raise ValueError("the number of spectra must be at least 1")
    model = BvKModel.aluminium() if model is None else model
    lo, hi = config.bounds(model.names)
    rng = np.random.default_rng(config.seed)
    accepted: list[np.ndarray] = []
    n_have, rejected = 0, 0
    while n_have < n:
        draw = rng.uniform(lo, hi, size=(max(2 * (n - n_have), 64), len(lo)))
        ok = stability_check(draw, model, n_grid=12)
        rejected += int((~ok).sum())
        accepted.append(draw[ok])
        n_have += int(ok.sum())
        if n_have == 0 and rejected > 10_000:
            raise ValueError("no stable force constants in the sampling ranges: narrow them around a stable reference")
    fc = np.concatenate(accepted)[:n]
    if config.temperature_range is None:
        temps = np.full(n, float(config.temperature))
    else:
        temps = rng.uniform(*config.temperature_range, size=n)
    gam = np.zeros(n) if config.linewidth_range is None else rng.uniform(*config.linewidth_range, size=n)
    if np.any(temps <= 0):
        raise ValueError("temperatures must be positive (K)")
    return SampledParameters(fc, temps, gam, rejected)


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
                     overwrite: bool = False, progress: bool = True, device: str = "cpu") -> Path:
    """Simulate a data set of ``n`` spectra (this shard's part of it) into ``output``.

    Work goes to ``output + '.partial'`` and is renamed onto ``output`` when complete; rerunning the
    same command after an interruption resumes from the last finished batch.
    """
    config = SamplingConfig() if config is None else config
    grid = standard_grid() if grid is None else grid
    settings = SimulationSettings() if settings is None else settings
    out = check_output_path(output, overwrite)
    partial = out.with_name(out.name + ".partial")
    params = sample_parameters(n, config)
    part = shard_slice(n, shard)
    idx = np.arange(n)[part]
    if idx.size == 0:
        raise ValueError(f"shard {shard[0]}/{shard[1]} of {n} spectra is empty: use fewer shards")
    sim = PowderSimulator(grid=grid, settings=settings, device=device)
    provenance = {"sampling": asdict(config), "n_total": n, "shard": list(shard), "indices": [int(idx[0]), int(idx[-1]) + 1],
                  "n_rejected_unstable": params.n_rejected, "simulator": sim.describe(),
                  "force_constant_names": list(FORCE_CONSTANT_NAMES)}
    signature = json.dumps(provenance, sort_keys=True, default=str)
    done = _open_partial(partial, signature, discard_mismatch=overwrite)
    if done is None:
        template = Spectrum(intensity=np.zeros((idx.size, *grid.shape), dtype=np.float32), grid=grid,
                            temperature=params.temperature[idx], quantity=settings.quantity,
                            normalization="mean" if settings.normalize else "none",
                            force_constants=params.force_constants[idx], metadata=provenance)
        with h5py.File(partial, "w") as f:
            write_spectrum_group(f, template)
            f.create_dataset("linewidth", data=params.linewidth[idx]).attrs["meaning"] = "γ, HWHM = γ·E"
            f.create_dataset("index", data=idx)
            f.attrs["signature"] = signature
            f.attrs["completed"] = 0
        done = 0
    log.info("simulating %d spectra (%d rejected as unstable while sampling)%s", idx.size, params.n_rejected,
             f", resuming after {done}" if done else "")
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


def merge_shards(paths: list[str | os.PathLike], output: str | os.PathLike, overwrite: bool = False) -> Path:
    """Concatenate shard files of one data set (in index order) into ``output``, atomically."""
    from phonon_ml_core.data.fileio import atomic_path

    if not paths:
        raise ValueError("no shard files to merge")
    parts = [Spectrum.from_hdf5(p) for p in paths]
    order = np.argsort([p.metadata.get("indices", [0])[0] for p in parts])
    merged = Spectrum.stack([parts[i] for i in order])
    merged.metadata = dict(parts[order[0]].metadata)
    merged.metadata.pop("indices", None)
    merged.metadata["merged_from"] = [os.fspath(paths[i]) for i in order]
    out = check_output_path(output, overwrite)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        write_spectrum_group(f, merged)
    return out
