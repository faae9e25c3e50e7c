"""The one training set-up behind ``phonon-ml train`` and the Mantid algorithm TrainPhononVAE.

Both hand their option values (by the CLI's argparse names, :func:`training_defaults`) and their measured
spectra to :func:`train_to_bundle`: the same checks of the data set, the same grid rule for fine-tuning spectra
(:func:`~phonon_ml_core.learn.inputs.onto_model_grid`), the same material/experiment check, configuration,
provenance and bundle writing. The material and experiment come from the data set (aluminium and the
standard settings for sets that record none).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from phonon_ml_core.data.fileio import check_bundle_output
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.data.validation import check_device
from phonon_ml_core.learn import distributed
from phonon_ml_core.learn.bundle import Bundle, bundle_from_training
from phonon_ml_core.learn.bundle_metadata import file_info
from phonon_ml_core.learn.configs import (  # noqa: F401  (training_defaults re-exported: its old home)
    PipelineConfig,
    StageConfig,
    study_stage_config,
    training_defaults,
)
from phonon_ml_core.learn.inputs import onto_model_grid
from phonon_ml_core.learn.matching import check_matches, spectrum_experiment, spectrum_material
from phonon_ml_core.learn.networks import check_latent_dim
from phonon_ml_core.learn.pipeline import TrainingResult, train_pipeline


def pipeline_config(options: Mapping[str, Any]) -> PipelineConfig:
    """The :class:`PipelineConfig` of option values given by argparse name (absent or None: the defaults).

    ``optimizer="sgd"`` gives the study's stages (:func:`study_stage_config`: constant rate, no early stopping);
    the regressor's patience is at least its default.
    """
    o = {**training_defaults(), **{k: v for k, v in options.items() if v is not None or k == "background_degree"}}
    check_latent_dim(int(o["latent_dim"]))
    sgd = o["optimizer"] == "sgd"
    make = study_stage_config if sgd else StageConfig
    ae_extra = {} if sgd else {"patience": int(o["patience"])}
    reg_extra = {} if sgd else {"patience": max(int(o["patience"]), int(o["regressor_patience"]))}
    every = int(o["checkpoint_every"])
    return PipelineConfig(
        family=o["family"], latent_dim=int(o["latent_dim"]), kl_weight=float(o["kl_weight"]),
        pretrain=make(epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=o["lr"], checkpoint_every=every,
                      **ae_extra),
        finetune_epochs=int(o["finetune_epochs"]), extended_epochs=int(o["extended_epochs"]),
        regressor=make(epochs=int(o["regressor_epochs"]), batch_size=int(o["regressor_batch_size"]),
                       checkpoint_every=every, **reg_extra),
        regressor_codes=o["regressor_codes"], augment_noise=float(o["augment_noise"]),
        augment_background=float(o["augment_background"]), on_the_fly=int(o["on_the_fly"]),
        background_degree=o["background_degree"], predict_linewidth=bool(o["predict_linewidth"]),
        physics_steps=int(o["physics_steps"]), physics_finetune_steps=int(o["physics_finetune_steps"]),
        physics_batch=int(o["physics_batch"]), physics_lr=float(o["physics_lr"]),
        physics_finetune_lr=float(o["physics_finetune_lr"]), physics_finetune_layers=o["physics_finetune_layers"],
        physics_background=bool(o["physics_background"]), regressor_temperature=bool(o["regressor_temperature"]),
        temperature_invariance=float(o["temperature_invariance"]),
        latent_temperature_invariance=float(o["latent_temperature_invariance"]), seed=int(o["seed"]))


def check_training_file(path: str | os.PathLike) -> str | None:
    """The problem with ``path`` as a labelled simulated data set (conventions §4), or None (reads with h5py
    only: a fast check before any heavy work)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        return f"{p} does not exist"
    try:
        with h5py.File(p, "r") as f:
            missing = [k for k in ("q", "energy", "intensity") if k not in f]
            if missing:
                return f"{p} is not a phonon-ml data set (lacks {missing}; conventions §4)"
            if "force_constants" not in f:
                return (f"{p} has no force_constants: the regressor needs a labelled simulated set "
                        "(`phonon-ml simulate --count N`)")
            if f["intensity"].ndim != 3:
                return f"{p} holds one spectrum, not a data set: simulate one with `phonon-ml simulate --count N`"
    except OSError as exc:
        return f"{p} is not a readable HDF5 file: {exc}"
    return None


def read_training_set(path: str | os.PathLike) -> Spectrum:
    """The labelled simulated set at ``path``; ValueError naming the problem (:func:`check_training_file`)."""
    problem = check_training_file(path)
    if problem:
        raise FileNotFoundError(problem) if not Path(path).is_file() else ValueError(problem)
    return Spectrum.from_hdf5(path)


def fine_tuning_set(simulated: Spectrum, measured: Sequence[Spectrum], names: Sequence[str]) -> Spectrum | None:
    """The measured spectra on the training set's grid (:func:`onto_model_grid`), checked against its material
    and experiment, stacked into one set; None when there are none."""
    material, experiment = spectrum_material(simulated), spectrum_experiment(simulated)
    sets = []
    for name, s in zip(list(names) or [f"measured[{i}]" for i in range(len(measured))], measured):
        if s.n_spectra == 0:
            raise ValueError(f"{name} holds no spectrum")
        try:
            check_matches(material, experiment, s, "the simulated training set", "the spectra",
                          "fine-tune on spectra of the training set's material and experiment, or simulate a "
                          "training set for theirs")
            s = onto_model_grid(s, simulated.grid)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        sets.extend(list(s) if s.is_set else [s])
    return Spectrum.stack(sets) if sets else None


def train_to_bundle(data: str | os.PathLike, output: str | os.PathLike, options: Mapping[str, Any],
                    measured: Sequence[Spectrum] = (), measured_names: Sequence[str] = (),
                    measured_provenance: Sequence[dict[str, Any]] | None = None, *, overwrite: bool = False,
                    weights_dtype: str = "float32", checkpoint_dir: str | os.PathLike | None = None,
                    resume: bool = False, progress: bool = True, overwrite_hint: str = "pass --overwrite",
                    on_epoch: Callable[[dict[str, Any]], None] | None = None,
                    device: str = "cpu") -> tuple[Bundle, TrainingResult]:
    """Train on the simulated set ``data`` (+ ``measured`` spectra for fine-tuning) and write the bundle ``output``.

    ``options``: option values by argparse name (:func:`pipeline_config`). ``measured_provenance``: one record per
    measured input for the bundle's metadata (default: their names). ``checkpoint_dir``: stage checkpoints, kept
    after an interruption for ``resume`` and removed after success; None = a private temporary folder beside the
    output, always removed. ``device``: torch device of the autoencoder stages (``cuda`` under torchrun: each
    process's own GPU). Under torchrun every process trains its share and rank 0 alone writes
    (:mod:`phonon_ml_core.learn.distributed`). Every check runs before training starts.
    """
    check_device(device, "device")
    out = check_bundle_output(output, overwrite, overwrite_hint=overwrite_hint)
    cfg = pipeline_config(options)
    simulated = read_training_set(data)
    meas = fine_tuning_set(simulated, measured, measured_names)
    with distributed.process_group(device):  # under torchrun: all processes train, rank 0 writes (learn.distributed)
        writes = distributed.is_main()
        with distributed.checkpoint_folder(out, checkpoint_dir, resume, _remove_checkpoints) as ckdir:
            result = train_pipeline(simulated, cfg, measured=meas, workdir=ckdir, resume=resume, progress=progress,
                                    on_epoch=on_epoch, device=distributed.process_device(device))
            provenance = list(measured_provenance) if measured_provenance is not None else \
                [{"name": n} for n in measured_names]
            meta = {"simulated": {**file_info(data), "n_spectra": simulated.n_spectra, "metadata": simulated.metadata},
                    "finetune": provenance, "processes": distributed.world_size()}
            ranges = simulated.metadata.get("sampling_ranges") or simulated.metadata.get("sampling")
            bundle = bundle_from_training(result, simulated.grid, data=meta,
                                          sampling_ranges=ranges if isinstance(ranges, dict) else None,
                                          quantity=simulated.quantity)
            if writes:
                bundle.save(out, overwrite=overwrite, weights_dtype=weights_dtype,
                            extra_files={"training_log.jsonl": ckdir / "training_log.jsonl",
                                         "loss_curve.png": ckdir / "loss_curve.png"})
    return bundle, result


def _remove_checkpoints(folder: Path) -> None:
    """Another run's checkpoints in a given ``--checkpoint-dir`` (its other files are kept)."""
    for f in folder.glob("*.pt"):
        f.unlink()
