"""One feature extractor for several materials and instruments: ``phonon-ml train --data cu.h5 fe.h5 …``.

Design (docs/scaling.md, "Mixed-material training"):

- **One common grid.** Every default grid (``specs.default_grid``) has the same pixel layout in reduced units
  (energy 0.2–0.9·Ei, |Q| steps scaling with √Ei), so spectra of any material, instrument and Ei are arrays of
  one shape. The extractor sees the pixels every set covers (the intersection of the masks), each spectrum
  mean-normalised on them. Sets of another shape are refused.
- **One feature extractor** (the autoencoder) is pretrained on all spectra of all sets together; which material
  and experiment each spectrum belongs to is recorded (``mixed.json``: each member's block of rows).
- **One regressor per material**: each set's constants are learned from the shared codes, so each member is an
  ordinary bundle (its own material, experiment, named targets, its own axes with the common mask, the shared
  extractor's weights) that ``phonon-ml predict --model OUTPUT/<member>`` uses as it is.

The output is a folder: one bundle per member and ``mixed.json``, written beside the output and renamed onto it
when complete. Under torchrun every stage runs on all processes and rank 0 writes (:mod:`.distributed`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phonon_ml_core.data.fileio import check_bundle_output
from phonon_ml_core.data.jsonio import write_json
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.data.validation import check_device
from phonon_ml_core.learn import distributed
from phonon_ml_core.learn.bundle import Bundle, bundle_from_training
from phonon_ml_core.learn.bundle_metadata import file_info
from phonon_ml_core.learn.inputs import spectra_tensor
from phonon_ml_core.learn.matching import spectrum_experiment, spectrum_material
from phonon_ml_core.learn.pipeline import train_pipeline
from phonon_ml_core.learn.setup import pipeline_config, read_training_set

__all__ = ["MANIFEST", "common_mask", "member_label", "on_common_mask", "train_mixed"]

#: The file of a mixed-material output that lists its members.
MANIFEST = "mixed.json"

#: Fewest pixels the experiments of a mixed set must share.
MIN_COMMON_PIXELS = 64


def common_mask(sets: Sequence[Spectrum], names: Sequence[str]) -> np.ndarray:
    """The pixels every set covers (n_E, n_Q); ValueError naming the set when the pixel layouts differ or too
    few pixels are shared."""
    shape = sets[0].grid.shape
    for s, name in zip(sets, names):
        if s.grid.shape != shape:
            raise ValueError(f"{name} is on a {s.grid.shape[0]} × {s.grid.shape[1]} grid, {names[0]} on "
                             f"{shape[0]} × {shape[1]}: a shared feature extractor needs one pixel layout; simulate "
                             "every set on its experiment's default grid (phonon-ml simulate without custom axes)")
    mask = np.logical_and.reduce([np.asarray(s.grid.mask, dtype=bool) for s in sets])
    if mask.sum() < MIN_COMMON_PIXELS:
        raise ValueError(f"the experiments of {', '.join(names)} share only {int(mask.sum())} valid pixels (at least "
                         f"{MIN_COMMON_PIXELS} needed): train sets of overlapping kinematic ranges together")
    return mask


def on_common_mask(spectra: Spectrum, mask: np.ndarray) -> Spectrum:
    """``spectra`` on their own axes with ``mask`` as the valid pixels, mean-normalised on them."""
    x = np.where(mask, np.asarray(spectra.intensity, dtype=float), np.nan)
    return replace(spectra, grid=replace(spectra.grid, mask=np.array(mask)), intensity=mean_normalize(x, mask),
                   normalization="mean", errors=None)


def member_label(spectra: Spectrum) -> str:
    """A member's folder name: material, instrument and Ei (``Cu_ARCS_50meV``)."""
    m, e = spectrum_material(spectra), spectrum_experiment(spectra)
    return f"{m.name}_{e.instrument}_{e.ei_mev:g}meV".replace("/", "-").replace(" ", "-")


def train_mixed(data: Sequence[str | os.PathLike], output: str | os.PathLike, options: Mapping[str, Any], *,
                overwrite: bool = False, weights_dtype: str = "float32",
                checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
                device: str = "cpu", on_epoch=None) -> tuple[list[Bundle], dict[str, Any]]:
    """Train one feature extractor on all the sets ``data`` and one regressor per set; write the folder ``output``
    (one bundle per set, named by :func:`member_label`, and :data:`MANIFEST`). Returns the bundles and the
    manifest. ``options`` are the option values of ``phonon-ml train`` (:func:`pipeline_config`); fine-tuning on
    measured spectra and on-the-fly pretraining are single-material features and are refused here.
    """
    check_device(device, "device")
    out = check_bundle_output(output, overwrite)
    cfg = pipeline_config(options)
    if cfg.on_the_fly:
        raise ValueError("--on-the-fly draws spectra of one material: train several sets without it")
    names = [os.fspath(p) for p in data]
    if len(names) < 2:
        raise ValueError("a mixed-material training needs at least two data sets")
    sets = [read_training_set(p) for p in names]
    mask = common_mask(sets, names)
    members = [on_common_mask(s, mask) for s in sets]
    labels = [member_label(s) for s in members]
    labels = [lab if labels.count(lab) == 1 else f"{lab}_{i}" for i, lab in enumerate(labels)]
    tensors = [spectra_tensor(s, None, name)[0] for s, name in zip(members, names)]
    extractor = torch.cat(tensors)
    rows = np.cumsum([0] + [t.shape[0] for t in tensors])
    with distributed.process_group(device):
        writes = distributed.is_main()
        dev = distributed.process_device(device)
        results = []
        with distributed.checkpoint_folder(out, checkpoint_dir, resume, shutil.rmtree) as ckdir:
            for k, member in enumerate(members):
                shared = None if k == 0 else results[0].autoencoder
                results.append(train_pipeline(member, cfg, workdir=ckdir / labels[k], resume=resume,
                                              progress=progress, on_epoch=on_epoch, device=dev,
                                              extractor_data=extractor if k == 0 else None, autoencoder=shared))
            manifest = {"format": "phonon-ml-mixed", "version": 1, "members": [
                {"bundle": labels[k], "data": file_info(names[k]), "material": spectrum_material(s).name,
                 "experiment": spectrum_experiment(s).describe(), "extractor_rows": [int(rows[k]), int(rows[k + 1])]}
                for k, s in enumerate(members)],
                "extractor": {"n_spectra": int(extractor.shape[0]), "common_valid_pixels": int(mask.sum()),
                              "family": cfg.family, "latent_dim": cfg.latent_dim, "trained_with": labels[0]},
                "processes": distributed.world_size()}
            bundles = [bundle_from_training(r, s.grid, quantity=s.quantity,
                                            data={"simulated": {**file_info(n), "n_spectra": s.n_spectra,
                                                                "metadata": s.metadata},
                                                  "mixed": {"members": labels, "extractor": manifest["extractor"]}})
                       for r, s, n in zip(results, members, names)]
            if writes:
                _write(out, bundles, labels, manifest, ckdir, overwrite, weights_dtype)
    return bundles, manifest


def _write(out: Path, bundles: Sequence[Bundle], labels: Sequence[str], manifest: dict[str, Any], ckdir: Path,
           overwrite: bool, weights_dtype: str) -> None:
    """Every member bundle and the manifest into a folder beside ``out``, renamed onto it when complete."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for bundle, label in zip(bundles, labels):
            logs = {f: ckdir / label / f for f in ("training_log.jsonl", "loss_curve.png")
                    if (ckdir / label / f).exists()}
            bundle.save(tmp / label, weights_dtype=weights_dtype, extra_files=logs)
        write_json(tmp / MANIFEST, manifest)
        if out.exists() and overwrite:
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
