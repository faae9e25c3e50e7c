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

from phonon_ml_core.mantid_support.checks import (DEVICE_CHOICES, bundle_grid_description,  # noqa: F401
                                                  bundle_path_or_default, check_grid_matches_bundle,
                                                  check_members_for_bundle, check_output_bundle, check_output_file,
                                                  declare_device, default_bundle_path, device_problem, group_members,
                                                  member_without_temperature)
from phonon_ml_core.mantid_support.logs import (EI_LOGS, TEMPERATURE_LOGS, find_log, incident_energy,  # noqa: F401
                                                instrument_name, sample_temperature)
from phonon_ml_core.mantid_support.phonopy_io import force_constants_from_phonopy  # noqa: F401
from phonon_ml_core.mantid_support.registration import (CATEGORY, INSTALLED_PLUGIN_PACKAGE,  # noqa: F401
                                                        PLUGIN_ALGORITHMS, mantid_available, plugin_files,
                                                        plugins_directory)
from phonon_ml_core.mantid_support.specs_properties import (DEFAULT_INSTRUMENT, DEFAULT_MATERIAL,  # noqa: F401
                                                            EXPERIMENT_LOG, MATERIAL_LOG, chopper_choices,
                                                            declare_experiment_properties, experiment_problems,
                                                            experiment_properties, experiment_settings,
                                                            instrument_choices, make_experiment, material_for,
                                                            material_mismatch, material_problem, optional,
                                                            resolve_material, workspace_experiment,
                                                            workspace_material)
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
    """The problem with ``path`` as a labelled simulated data set, or None
    (:func:`phonon_ml_core.learn.setup.check_training_file`)."""
    from phonon_ml_core.learn.setup import check_training_file as check

    return check(path)


def train_bundle(args: dict[str, Any], measured: Sequence[Any] = (), measured_names: Sequence[str] = (),
                 on_epoch: Callable[[dict], None] | None = None, device: str = "cpu") -> Path:
    """Train and write a bundle exactly as ``phonon-ml train`` does
    (:func:`phonon_ml_core.learn.setup.train_to_bundle`), from in-memory measured spectra instead of files.
    ``args`` holds option values by their argparse names (data, output, overwrite, family, latent_dim, epochs, …;
    absent ones take the core's defaults). ``device``: torch device of the autoencoder stages. Returns the bundle
    path.
    """
    from phonon_ml_core.learn.setup import train_to_bundle

    names = list(measured_names) or [f"measured[{i}]" for i in range(len(measured))]
    options = {k: v for k, v in args.items() if k not in ("data", "output", "overwrite")}
    train_to_bundle(args["data"], args["output"], options, measured, names, [{"workspace": n} for n in names],
                    overwrite=bool(args.get("overwrite", False)), progress=False, overwrite_hint="set Overwrite",
                    on_epoch=on_epoch, device=device)
    return Path(args["output"])
