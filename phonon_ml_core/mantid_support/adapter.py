"""Thin adapters between Mantid workspaces and the phonon-ml core (docs/mantid.md): the one module the
plugins import.

The Mantid algorithms in ``plugins/`` add no science: they convert their input workspaces to a
:class:`~phonon_ml_core.data.spectrum.Spectrum` (:mod:`.workspaces`), resolve the material and experiment
from their properties and the workspace (:mod:`.specs_properties`), call the same core functions as the CLI,
and convert the results back (:mod:`.workspaces`, :mod:`.tables`). Nothing here imports torch or Mantid at
module level: registration and ``validateInputs`` stay light (issue 15 item 6). The parts live in:

- :mod:`.registration` — where the plugins are, whether Mantid imports;
- :mod:`.logs` — temperature, Ei, instrument and text logs;
- :mod:`.specs_properties` — Material / Instrument / Ei / chopper properties → specs;
- :mod:`.workspaces` — workspace ↔ Spectrum;
- :mod:`.tables` — result tables named from the material;
- :mod:`.checks` — validateInputs helpers (outputs, bundles, groups);
- :mod:`.simulation`, :mod:`.phonopy_io` — SimulatePowderINS's core calls;
- here — progress reporting and the training wrappers used by TrainPhononVAE.
"""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

from phonon_ml_core.mantid_support.checks import (bundle_grid_description, bundle_path_or_default,  # noqa: F401
                                                  check_grid_matches_bundle, check_members_for_bundle,
                                                  check_output_bundle, check_output_file, default_bundle_path,
                                                  group_members, member_without_temperature)
from phonon_ml_core.mantid_support.logs import (EI_LOGS, TEMPERATURE_LOGS, find_log, incident_energy,  # noqa: F401
                                                instrument_name, sample_temperature)
from phonon_ml_core.mantid_support.phonopy_io import force_constants_from_phonopy  # noqa: F401
from phonon_ml_core.mantid_support.registration import (CATEGORY, INSTALLED_PLUGIN_PACKAGE,  # noqa: F401
                                                        PLUGIN_ALGORITHMS, mantid_available, plugin_files,
                                                        plugins_directory)
from phonon_ml_core.mantid_support.specs_properties import (DEFAULT_INSTRUMENT, DEFAULT_MATERIAL,  # noqa: F401
                                                            EXPERIMENT_LOG, MATERIAL_LOG, chopper_choices,
                                                            experiment_problems, experiment_settings,
                                                            instrument_choices, make_experiment, material_for,
                                                            material_mismatch, material_problem, resolve_material,
                                                            workspace_experiment, workspace_material)
from phonon_ml_core.mantid_support.tables import TABLE_COLUMNS, force_constants_table  # noqa: F401
from phonon_ml_core.mantid_support.workspaces import (ENERGY_UNITS, MASK_LOG, NORMALIZATION_LOG,  # noqa: F401
                                                      Q_UNIT, QUANTITY_LOG, check_sqw_workspace, on_grid,
                                                      spectrum_to_workspace, sqw_layout, workspace_quantity,
                                                      workspace_to_spectrum)


# ------------------------------------------------------------------------------------------ progress
def predict_spectra(bundle: Any, spectra: Sequence[Any], **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`phonon_ml_core.prediction.predict.predict_spectra` (imported when called: it needs torch)."""
    from phonon_ml_core.prediction.predict import predict_spectra as core_predict

    return core_predict(bundle, spectra, **kwargs)


def progress_callback(progress: Any, total: int, message: str) -> Callable[[dict], None]:
    """An ``on_epoch`` callback reporting a Mantid Progress every epoch (at most ``total`` reports)."""
    state = {"n": 0}

    def report(rec: dict) -> None:
        state["n"] += 1
        if state["n"] <= total:
            progress.report(f"{message}: {rec.get('stage', '')} epoch {rec.get('epoch', state['n'])}")

    return report


# ------------------------------------------------------------------------------------------ training
def check_training_file(path: str | os.PathLike) -> str | None:
    """The problem with ``path`` as a labelled simulated data set (conventions §4), or None (h5py only)."""
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


def train_bundle(args: dict[str, Any], measured: Sequence[Any] = (), measured_names: Sequence[str] = (),
                 on_epoch: Callable[[dict], None] | None = None) -> Path:
    """Train and write a bundle exactly as ``phonon-ml train`` does (commands/train.py), from in-memory
    measured spectra instead of files.

    ``args`` holds the CLI option values by their argparse names: data, output, overwrite, family,
    latent_dim, kl_weight, epochs, finetune_epochs, extended_epochs, regressor_epochs, optimizer, lr,
    batch_size, patience, regressor_codes, seed. Returns the bundle path.
    """
    import shutil
    import tempfile

    from phonon_ml_core.learn.bundle import bundle_from_training
    from phonon_ml_core.cli.train import _file_info
    from phonon_ml_core.learn.networks import check_latent_dim
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.learn.training import PipelineConfig, StageConfig, study_stage_config, train_pipeline

    out = Path(args["output"])
    problem = check_output_bundle(str(out), bool(args.get("overwrite", False)))
    if problem:
        raise ValueError(problem)
    check_latent_dim(int(args["latent_dim"]))
    simulated = Spectrum.from_hdf5(args["data"])
    if simulated.force_constants is None:
        raise ValueError(f"{args['data']} has no force_constants: the regressor needs a labelled simulated set")
    sets = []
    for name, s in zip(list(measured_names) or [f"measured[{i}]" for i in range(len(measured))], measured):
        try:
            s = on_grid(s, simulated.grid)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        sets.append(s)
    meas = Spectrum.stack(sets) if sets else None
    sgd = args.get("optimizer", "adam") == "sgd"
    make = study_stage_config if sgd else StageConfig
    extra = {} if sgd else {"patience": int(args.get("patience", 20))}
    cfg = PipelineConfig(
        family=args["family"], latent_dim=int(args["latent_dim"]), kl_weight=float(args["kl_weight"]),
        pretrain=make(epochs=int(args["epochs"]), batch_size=int(args["batch_size"]), lr=args.get("lr"),
                      checkpoint_every=5, **extra),
        finetune_epochs=int(args["finetune_epochs"]), extended_epochs=int(args["extended_epochs"]),
        regressor=make(epochs=int(args["regressor_epochs"]), batch_size=128, checkpoint_every=5,
                       **({} if sgd else {"patience": max(int(args.get("patience", 20)), 30)})),
        regressor_codes=args.get("regressor_codes", "sample"), seed=int(args.get("seed", 0)))
    workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".checkpoints",
                                    dir=out.parent if str(out.parent) else "."))
    try:
        result = train_pipeline(simulated, cfg, measured=meas, workdir=workdir, progress=False, on_epoch=on_epoch)
        data = {"simulated": {**_file_info(args["data"]), "n_spectra": simulated.n_spectra,
                              "metadata": simulated.metadata},
                "finetune": [{"workspace": n} for n in measured_names]}
        ranges = simulated.metadata.get("sampling_ranges") or simulated.metadata.get("sampling")
        bundle = bundle_from_training(result, simulated.grid, data=data,
                                      sampling_ranges=ranges if isinstance(ranges, dict) else None,
                                      instrument=simulated.instrument or "ARCS", quantity=simulated.quantity)
        bundle.save(out, overwrite=bool(args.get("overwrite", False)),
                    extra_files={"training_log.jsonl": workdir / "training_log.jsonl",
                                 "loss_curve.png": workdir / "loss_curve.png"})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out

