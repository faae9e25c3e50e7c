"""Material and experiment from algorithm properties and workspaces (conventions §0, §7; no torch).

The algorithms take ``Material`` (a built-in symbol or a material file; default :data:`ALUMINIUM`),
``Instrument``, ``Ei``, ``ChopperPackage`` and ``ChopperFrequency``. Unset values come from the specs:
the workspace's own records (``PhononMLMaterial`` / ``PhononMLExperiment`` logs, instrument name, Ei log)
first, then the instrument's defaults (:func:`phonon_ml_core.specs.get_instrument`) and
:data:`STANDARD_EXPERIMENT`. Problems are returned as messages for ``validateInputs``.
"""
from __future__ import annotations

import json
from typing import Any

from phonon_ml_core.mantid_support.logs import incident_energy, instrument_name, log_text
from phonon_ml_core.specs import (ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material, SpecError, get_instrument,
                                  get_material, list_instruments)

#: Logs that carry the material and the experiment (JSON of their ``to_dict``) on the algorithms' outputs.
MATERIAL_LOG = "PhononMLMaterial"
EXPERIMENT_LOG = "PhononMLExperiment"
#: The Material property's default (the element symbol of the default material).
DEFAULT_MATERIAL = ALUMINIUM.element
#: The Instrument property's default where no workspace names one.
DEFAULT_INSTRUMENT = STANDARD_EXPERIMENT.instrument


def instrument_choices() -> list[str]:
    """The instruments the specs know (resins' direct-geometry instruments)."""
    return list(list_instruments())


def chopper_choices() -> list[str]:
    """Every chopper package of every known instrument, sorted ("" = the instrument's default comes first)."""
    packages = {p for name in list_instruments() for p in get_instrument(name).chopper_packages}
    return [""] + sorted(packages)


def optional(alg: Any, name: str, cast: Any) -> Any:
    """The property ``name`` of ``alg`` cast by ``cast``, or None while it holds its (EMPTY_*) default."""
    prop = alg.getProperty(name)
    return None if prop.isDefault else cast(prop.value)


def declare_experiment_properties(alg: Any, instrument_doc: str, instrument_default: str = "",
                                  ei_doc: str = "incident energy, meV (default: the Ei log)",
                                  chopper_doc: str = "chopper package as resins names it (empty: the instrument's "
                                                     "default)",
                                  frequency_doc: str = "chopper frequency, Hz (default: the instrument's)") -> None:
    """Declare the experiment block on ``alg``: ``Ei`` (meV, > 0, unset = EMPTY_DBL), ``Instrument`` (a known
    instrument; "" = from the workspace unless ``instrument_default`` names one), ``ChopperPackage`` and
    ``ChopperFrequency`` (Hz, unset = EMPTY_INT). Read back with :func:`experiment_properties`."""
    from mantid.kernel import FloatBoundedValidator, IntBoundedValidator, Property, StringListValidator

    alg.declareProperty("Ei", Property.EMPTY_DBL, FloatBoundedValidator(lower=0.0, exclusive=True), doc=ei_doc)
    choices = instrument_choices() if instrument_default else [""] + instrument_choices()
    alg.declareProperty("Instrument", instrument_default, StringListValidator(choices), doc=instrument_doc)
    alg.declareProperty("ChopperPackage", "", StringListValidator(chopper_choices()), doc=chopper_doc)
    alg.declareProperty("ChopperFrequency", Property.EMPTY_INT, IntBoundedValidator(lower=1), doc=frequency_doc)


def experiment_properties(alg: Any) -> tuple[str, float | None, str, int | None]:
    """(Instrument, Ei meV or None, ChopperPackage, ChopperFrequency Hz or None) as declared by
    :func:`declare_experiment_properties`: the arguments of :func:`experiment_settings` after the workspace."""
    return (alg.getPropertyValue("Instrument"), optional(alg, "Ei", float), alg.getPropertyValue("ChopperPackage"),
            optional(alg, "ChopperFrequency", int))


def resolve_material(text: str | None) -> Material:
    """The material named by a property value (symbol, case-insensitive, or a material file); "" = Al.

    SpecError (a ValueError) listing the known materials when unknown.
    """
    return get_material(text or DEFAULT_MATERIAL)


def material_problem(text: str | None) -> str | None:
    """The problem with a Material property value, or None."""
    try:
        resolve_material(text)
    except (SpecError, ValueError, OSError) as exc:
        return str(exc)
    return None


def workspace_material(ws: Any) -> Material | None:
    """The material recorded on a workspace (``PhononMLMaterial`` log), or None."""
    text = log_text(ws, MATERIAL_LOG)
    if not text:
        return None
    try:
        return Material.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


def workspace_experiment(ws: Any) -> Experiment | None:
    """The experiment recorded on a workspace (``PhononMLExperiment`` log), or None."""
    text = log_text(ws, EXPERIMENT_LOG)
    if not text:
        return None
    try:
        return Experiment.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


def material_for(ws: Any, text: str, explicit: bool) -> Material:
    """The material of an input: the property when the user set it (``explicit``), else the workspace's
    record, else the property's default (aluminium)."""
    if explicit:
        return resolve_material(text)
    return workspace_material(ws) or resolve_material(text)


def instrument_for(ws: Any | None, instrument: str) -> str:
    """The instrument: the property when given, else the workspace's recorded experiment or instrument name
    when the specs know it, else :data:`DEFAULT_INSTRUMENT`."""
    if instrument:
        return get_instrument(instrument).name
    if ws is not None:
        recorded = workspace_experiment(ws)
        if recorded is not None:
            return recorded.instrument
        name = instrument_name(ws)
        if name:
            try:
                return get_instrument(name).name
            except (SpecError, ValueError):
                pass
    return DEFAULT_INSTRUMENT


def experiment_settings(ws: Any | None, instrument: str, ei_mev: float | None, chopper_package: str,
                        chopper_frequency: int | None) -> dict[str, Any]:
    """Instrument, Ei (meV), chopper package and frequency of an input, each from the property when given,
    else the workspace (recorded experiment, Ei log), else the instrument's defaults (specs)."""
    name = instrument_for(ws, instrument)
    info = get_instrument(name)
    recorded = None if ws is None else workspace_experiment(ws)
    same = recorded is not None and recorded.instrument == name
    if ei_mev is None and ws is not None:
        ei_mev = incident_energy(ws)[1]
    if ei_mev is None:
        ei_mev = info.default_ei_mev
    package = chopper_package or (recorded.chopper_package if same else info.default_chopper_package)
    frequency = chopper_frequency if chopper_frequency is not None else (
        recorded.chopper_frequency if same else info.default_chopper_frequency)
    return {"instrument": name, "ei_mev": float(ei_mev), "chopper_package": package,
            "chopper_frequency": int(frequency)}


def make_experiment(settings: dict[str, Any], grid=None) -> Experiment:
    """An :class:`Experiment` from :func:`experiment_settings` (grid: the default grid for the Ei when None)."""
    return Experiment.create(instrument=settings["instrument"], ei_mev=settings["ei_mev"],
                             chopper_package=settings["chopper_package"],
                             chopper_frequency=settings["chopper_frequency"], grid=grid)


def experiment_problems(ws: Any | None, instrument: str, ei_mev: float | None, chopper_package: str,
                        chopper_frequency: int | None) -> dict[str, str]:
    """validateInputs issues of an instrument / Ei / chopper combination ({property: message})."""
    try:
        settings = experiment_settings(ws, instrument, ei_mev, chopper_package, chopper_frequency)
    except (SpecError, ValueError) as exc:
        return {"Instrument": str(exc)}
    info = get_instrument(settings["instrument"])
    if settings["chopper_package"] not in info.chopper_packages:
        return {"ChopperPackage": f"{settings['chopper_package']} is not a chopper package of {info.name}: choose "
                                  f"one of {', '.join(info.chopper_packages)} (empty: {info.default_chopper_package})"}
    try:
        info.check_settings(settings["chopper_package"], settings["chopper_frequency"], settings["ei_mev"])
    except (SpecError, ValueError) as exc:
        key = "ChopperFrequency" if "frequen" in str(exc).lower() else "Ei"
        return {key: str(exc)}
    return {}


def record_specs(ws: Any, material: Material | None, experiment: Experiment | None) -> None:
    """Write the material and experiment on a workspace as JSON logs (read back by :func:`workspace_material`)."""
    from phonon_ml_core.data.jsonio import dumps

    run = ws.getRun()
    if material is not None:
        run.addProperty(MATERIAL_LOG, dumps(material.to_dict(), indent=None), True)
    if experiment is not None:
        run.addProperty(EXPERIMENT_LOG, dumps(experiment.to_dict(), indent=None), True)


def material_mismatch(expected: Material, got: Material, what: str) -> str | None:
    """A message when ``got`` (the input's material) differs from ``expected`` (e.g. a bundle's), else None; the same
    crystal with another number of shells is no difference (:meth:`Material.same_crystal`)."""
    if expected.same_as(got) or expected.same_crystal(got):
        return None
    return (f"{what} is for {expected.name} ({expected.lattice}, {', '.join(expected.names)}) but the input is "
            f"{got.name} ({got.lattice}, {', '.join(got.names)}): use a model bundle trained for {got.name} "
            f"(TrainPhononVAE on a {got.name} data set) or set Material to {expected.element}")
