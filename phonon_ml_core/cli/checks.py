"""Checks of every subcommand's arguments before any work: numbers, input files, output paths, device.

One table (:data:`NUMBER_RULES`) gives the valid range of each numeric option by its destination name, so that a
flag means the same thing in every command; :func:`check_arguments` applies it with the path checks of
:mod:`phonon_ml_core.data.validation` and :mod:`phonon_ml_core.data.fileio`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from phonon_ml_core.data.fileio import check_output_dir, check_output_path, nearest_existing
from phonon_ml_core.cli.options import OWN_OUTPUT_ROOT
from phonon_ml_core.data.validation import check_device, check_input_file, check_number, check_temperature

#: dest → keyword arguments of :func:`check_number` (low bound, inclusive or not, integer, unit).
NUMBER_RULES: dict[str, dict[str, Any]] = {
    "ei": {"low": 0.0, "high": 10000.0, "unit": "meV"},
    "lattice_parameter": {"low": 0.0, "high": 50.0, "unit": "Å"},
    "count": {"low": 1, "low_inclusive": True, "integer": True},
    "seed": {"low": 0, "low_inclusive": True, "integer": True},
    "samples": {"low": 1, "low_inclusive": True, "integer": True},
    "noise": {"low": 0.0, "low_inclusive": True, "high": 10.0, "unit": "(relative)"},
    "batch_size": {"low": 1, "low_inclusive": True, "integer": True},
    "mesh_density": {"low": 1, "low_inclusive": True, "integer": True},
    "chopper_frequency": {"low": 0, "integer": True, "unit": "Hz"},
    "linewidth": {"low": 0.0, "low_inclusive": True},
    "min_coverage": {"low": 0.0, "low_inclusive": True, "high": 1.0, "unit": "(fraction of a bin's area)"},
    "max_evaluations": {"low": 1, "low_inclusive": True, "integer": True},
    "fit_max_evaluations": {"low": 1, "low_inclusive": True, "integer": True},
    "epochs": {"low": 1, "low_inclusive": True, "integer": True},
    "finetune_epochs": {"low": 0, "low_inclusive": True, "integer": True},
    "extended_epochs": {"low": 0, "low_inclusive": True, "integer": True},
    "regressor_epochs": {"low": 1, "low_inclusive": True, "integer": True},
    "latent_dim": {"low": 1, "low_inclusive": True, "high": 1024, "integer": True},
    "kl_weight": {"low": 0.0, "low_inclusive": True},
    "lr": {"low": 0.0},
    "physics_lr": {"low": 0.0},
    "physics_finetune_lr": {"low": 0.0},
    "patience": {"low": 1, "low_inclusive": True, "integer": True},
    "augment_noise": {"low": 0.0, "low_inclusive": True},
    "augment_background": {"low": 0.0, "low_inclusive": True},
    "on_the_fly": {"low": 0, "low_inclusive": True, "integer": True},
    "physics_steps": {"low": 0, "low_inclusive": True, "integer": True},
    "physics_finetune_steps": {"low": 0, "low_inclusive": True, "integer": True},
    "checkpoint_every": {"low": 1, "low_inclusive": True, "integer": True},
    "steps": {"low": 1, "low_inclusive": True, "integer": True},
    "threshold": {"low": 0.0, "low_inclusive": True, "unit": "nats"},
    "latent_threshold": {"low": 0.0, "low_inclusive": True, "unit": "nats"},
    "delta": {"low": 0.0},
    "max_spectra": {"low": 1, "low_inclusive": True, "integer": True},
    "n_simulated": {"low": 1, "low_inclusive": True, "integer": True},
    "entry": {"low": 0, "low_inclusive": True, "integer": True},
    "shells": {"low": 1, "low_inclusive": True, "high": 10, "integer": True},
}

#: dest → whether the input may be a folder (model bundles are folders).
INPUT_RULES: dict[str, bool] = {"input": False, "data": False, "finetune": False, "measured": False,
                                "result": False, "model": True, "members": True}

#: Optional extra outputs, checked with the main output before any work.
EXTRA_OUTPUTS = ("plot", "csv")


def flag(dest: str) -> str:
    """The command-line spelling of an argparse destination (``max_evaluations`` → ``--max-evaluations``)."""
    return "--" + dest.replace("_", "-")


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _looks_like_path(text: str) -> bool:
    return os.sep in text or Path(text).suffix.lower() in (".json", ".yaml", ".yml")


def check_arguments(args: argparse.Namespace) -> None:
    """Validate the parsed arguments of any subcommand; raise ValueError/OSError naming the flag and the fix."""
    values = vars(args)
    for dest, rule in NUMBER_RULES.items():
        if values.get(dest) is not None:
            check_number(values[dest], flag(dest), **rule)
    if values.get("temperature") is not None:
        check_temperature(values["temperature"], "--temperature")
    if values.get("device") is not None:
        check_device(values["device"], "--device")
    inputs: list[Path] = []
    for dest, allow_dir in INPUT_RULES.items():
        if values.get(dest) is None:
            continue
        if dest == "model":  # a shipped bundle's name stands for its folder
            from phonon_ml_core.prediction.predict import bundle_location

            values[dest] = str(bundle_location(values[dest]))
        for item in _as_list(values[dest]):
            inputs.append(check_input_file(item, flag(dest), allow_dir=allow_dir).resolve())
    if isinstance(values.get("material"), str) and _looks_like_path(values["material"]):
        check_input_file(values["material"], "--material")
    overwrite = bool(values.get("overwrite", False))
    outputs = [values[d] for d in ("output", *EXTRA_OUTPUTS) if isinstance(values.get(d), str)]
    for out in outputs:
        if Path(out).resolve() in inputs:
            raise ValueError(f"the output {out} is also an input: choose another output path")
    if len({Path(o).resolve() for o in outputs}) < len(outputs):
        raise ValueError(f"two outputs have the same path ({', '.join(outputs)}): give each its own file")
    for d in EXTRA_OUTPUTS:
        if isinstance(values.get(d), str):
            try:
                p = check_output_path(values[d], overwrite)
            except OSError as exc:     # name the flag: several outputs may share a folder
                raise type(exc)(f"{flag(d)} {values[d]}: {exc}") from None
            if p.suffix.lower() != ".png" and d == "plot":
                raise ValueError(f"--plot {p}: the figure is a PNG; give a file name ending in .png")
    if isinstance(values.get("output_dir"), str):
        own = Path(values["output_dir"]).parts[:1] == (OWN_OUTPUT_ROOT,)
        out = check_output_dir(values["output_dir"], create_parents=own)
        target = out if out.exists() else nearest_existing(out.parent if str(out.parent) else Path("."))
        if not os.access(target, os.W_OK | os.X_OK):
            raise PermissionError(f"--output-dir {out}: cannot write to {target}: choose a writable folder")


#: Distinct temperatures each --series-model needs (fitting.joint_model.SeriesModel).
SERIES_DISTINCT_TEMPERATURES = {"linear": 2, "quadratic": 3, "free": 2}


def check_series_temperatures(temperatures: list[float], labels: list[str], model: str) -> None:
    """``fit --joint``: at least two spectra, enough distinct temperatures (K) for ``model``, and for ``free`` (one
    set of constants per temperature) no temperature twice; ValueError naming the inputs and the fix."""
    if len(temperatures) < 2:
        raise ValueError(f"--joint needs at least two spectra (a temperature series), got {len(temperatures)}: give "
                         "more --input files, or fit one spectrum without --joint")
    seen: dict[float, str] = {}
    for t, label in zip(temperatures, labels):
        if t in seen and model == "free":
            raise ValueError(f"--joint --series-model free: {seen[t]} and {label} are both at T = {t:g} K; the free "
                             "model fits one set of constants per temperature: give each temperature once (average "
                             "or drop repeats), or use --series-model linear")
        seen.setdefault(t, label)
    need = SERIES_DISTINCT_TEMPERATURES[model]
    if len(seen) < need:
        raise ValueError(f"--joint --series-model {model} needs at least {need} distinct temperatures, got "
                         f"{', '.join(f'{t:g}' for t in sorted(seen))} K (from the files or --temperature): add "
                         "spectra at other temperatures" + (", or drop --temperature (it sets every input's)"
                                                           if len(seen) == 1 else ""))


def check_ei_matches_inputs(ei_mev: float | None, inputs: list) -> None:
    """--ei applies to reduced files; a preprocessed ``.h5`` spectrum already lives on the grid of its Ei (meV): an
    --ei that disagrees with it is refused (the spectrum cannot be re-gridded), naming the file."""
    if ei_mev is None:
        return
    for inp in inputs:
        if inp.reduced:
            continue
        own = inp.spectrum.grid.ei_mev
        if own is not None and abs(float(own) - float(ei_mev)) > 1e-6 * max(abs(float(own)), 1.0):
            raise ValueError(f"--ei {ei_mev:g} meV: {inp.path} is a preprocessed spectrum on the grid for Ei = "
                             f"{float(own):g} meV; --ei only sets the Ei of reduced files (.nxs, .nxspe): drop --ei, "
                             "or preprocess the reduced file again with the right Ei")
