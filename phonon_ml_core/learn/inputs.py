"""Spectra as network inputs: onto a model's grid, mean-normalised float32 tensors, and the seeded split."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum


def spectra_tensor(spectra: Spectrum, grid: Grid | None = None, what: str = "data set"
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """Mean-normalised float32 tensor (N, n_E, n_Q) and the indices kept.

    Spectra whose valid pixels are all NaN (e.g. unstable simulated sets) are dropped; an empty or
    all-NaN set, or one on another grid than ``grid``, raises ValueError.
    """
    if grid is not None and not spectra.grid.same_as(grid):
        raise ValueError(f"the {what} is on a different grid (shape {spectra.grid.shape}, mask hash "
                         f"{spectra.grid.mask_hash()[:12]}) than expected (shape {grid.shape}, mask hash "
                         f"{grid.mask_hash()[:12]}): preprocess it onto the training grid first")
    x = np.asarray(spectra.intensity, dtype=float).reshape(-1, *spectra.grid.shape)
    if x.shape[0] == 0:
        raise ValueError(f"the {what} holds no spectrum")
    valid = x[:, spectra.grid.mask]
    keep = np.where(np.isfinite(valid).any(-1))[0]
    if keep.size == 0:
        raise ValueError(f"every spectrum of the {what} is NaN on the valid pixels: nothing to train on")
    x, valid = x[keep], valid[keep]
    if spectra.normalization != "mean":
        vmean = np.nanmean(valid, -1, keepdims=True)
        span = np.nanmax(valid, -1, keepdims=True) - np.nanmin(valid, -1, keepdims=True)
        if np.any(span <= 0):
            raise ValueError(f"a spectrum of the {what} is constant on the valid pixels; it cannot be normalised")
        valid = (valid - vmean) / span
    out = np.full(x.shape, np.nan, dtype=np.float32)
    out[:, spectra.grid.mask] = valid
    return torch.from_numpy(out), keep


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split; no validation set below 10 items."""
    n_val = int(round(n * val_fraction)) if n >= 10 else 0
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


#: Largest fraction of a bundle grid's valid pixels a spectrum may lack and still be predicted from.
MAX_MISSING_FRACTION = 0.02


def onto_model_grid(spectrum: Spectrum, grid: Grid, max_missing_fraction: float = MAX_MISSING_FRACTION) -> Spectrum:
    """``spectrum`` on a model's ``grid`` (same axes), mean-normalised on the grid's mask: the one rule for
    spectra given to a bundle (predict, finetune) or to training (fine-tuning spectra), CLI and Mantid alike.

    A spectrum whose coverage misses a few of the grid's valid pixels (e.g. a slightly different low-|Q|
    edge after preprocessing) is normalised on the pixels it has and the missing ones are set to the mean
    (0), up to ``max_missing_fraction``; the count goes to ``metadata['filled_pixels']``. Other axes, or more
    missing pixels, raise ValueError naming the fix.
    """
    g = spectrum.grid
    if g.shape != grid.shape or not (np.allclose(g.q, grid.q, atol=1e-6) and np.allclose(g.energy, grid.energy,
                                                                                           atol=1e-6)):
        raise ValueError(f"the spectrum is on another grid (n_E × n_Q = {g.shape[0]} × {g.shape[1]}, E "
                         f"{g.energy[0]:.4g}–{g.energy[-1]:.4g} meV, |Q| {g.q[0]:.4g}–{g.q[-1]:.4g} 1/Å) than the "
                         f"model ({grid.shape[0]} × {grid.shape[1]}): preprocess it onto the model's grid first "
                         "(`phonon-ml preprocess`, PreprocessForML)")
    own = spectrum.masked() if spectrum.normalization == "mean" else spectrum.normalized()
    finite = np.isfinite(own.intensity)
    finite = finite.all(0) if finite.ndim == 3 else finite
    have = finite & grid.mask
    missing = int(grid.mask.sum() - have.sum())
    if missing > max_missing_fraction * grid.n_valid:
        raise ValueError(f"the spectrum lacks {missing} of the model grid's {grid.n_valid} valid pixels (more than "
                         f"{max_missing_fraction:.0%}): the data do not cover the model's kinematic range; use data "
                         "reduced over the model's range (Ei, angles)")
    if missing == 0 and np.array_equal(g.mask, grid.mask) and spectrum.normalization == "mean":
        return spectrum
    inten = np.where(have, own.intensity, np.nan)
    inten = mean_normalize(inten, have)  # on the pixels present …
    inten = np.where(grid.mask & ~have, 0.0, inten)  # … and the missing ones at the mean
    meta = dict(spectrum.metadata, filled_pixels=missing)
    err = None if spectrum.errors is None else np.where(grid.mask, spectrum.errors, np.nan)
    return replace(spectrum, grid=grid, intensity=inten, errors=err, normalization="mean", metadata=meta)
