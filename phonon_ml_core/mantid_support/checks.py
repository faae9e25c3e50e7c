"""validateInputs helpers: output paths, model bundles (read without torch), groups and temperatures."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np

from phonon_ml_core.mantid_support.logs import sample_temperature
from phonon_ml_core.mantid_support.workspaces import check_sqw_workspace, sqw_layout


#: The values of the Device property of the algorithms (a CUDA device must also exist: :func:`device_problem`).
DEVICE_CHOICES = ("cpu", "cuda")


def declare_device(alg: Any, doc: str) -> None:
    """Declare the ``Device`` property on ``alg`` (:data:`DEVICE_CHOICES`, default cpu; check it in validateInputs
    with :func:`device_problem`)."""
    from mantid.kernel import StringListValidator

    alg.declareProperty("Device", DEVICE_CHOICES[0], StringListValidator(list(DEVICE_CHOICES)), doc=doc)


def device_problem(device: str) -> str | None:
    """The problem with ``device`` as the Device property (no CUDA on this machine, …), or None
    (:func:`phonon_ml_core.data.validation.check_device`, the one home of that check)."""
    from phonon_ml_core.data.validation import check_device

    try:
        check_device(device, "Device")
    except ValueError as exc:
        return str(exc).replace("--device cpu", "Device=cpu")
    return None


def check_output_file(path: str, overwrite: bool) -> str | None:
    """The problem with writing ``path`` (exists without overwrite, missing or read-only folder), or None."""
    from phonon_ml_core.data.fileio import check_output_path

    if not path:
        return "give an output path"
    try:
        check_output_path(path, overwrite)
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        return str(exc)
    return None


def check_output_bundle(path: str, overwrite: bool) -> str | None:
    """The problem with writing a bundle directory at ``path`` (:func:`fileio.check_bundle_output`), or None."""
    from phonon_ml_core.data.fileio import check_bundle_output

    if not path:
        return "give the output bundle directory"
    try:
        check_bundle_output(path, overwrite, overwrite_hint="set Overwrite")
    except (FileExistsError, FileNotFoundError, PermissionError) as exc:
        return str(exc)
    return None


def default_bundle_path() -> Path | None:
    """The bundle shipped in the repository's ``models/`` (:func:`prediction.predict.shipped_bundle_path`), or None."""
    from phonon_ml_core.prediction.predict import shipped_bundle_path

    return shipped_bundle_path()


def bundle_path_or_default(path: str) -> str | None:
    """``path`` when given, else the shipped bundle's path, or None when there is none."""
    if path:
        return path
    found = default_bundle_path()
    return None if found is None else str(found)


def bundle_grid_description(path: str | os.PathLike) -> dict[str, Any]:
    """What a bundle's (or an ensemble's) metadata.json says (no torch): grid (q, energy, ei_mev, mask_sha256),
    family, whether it takes the temperature, and its material (:data:`ALUMINIUM` for bundles that record none).

    FileNotFoundError / ValueError with the reason for a missing directory or a non-bundle.
    """
    from phonon_ml_core.learn.bundle_metadata import read_bundle_metadata
    from phonon_ml_core.specs import ALUMINIUM, Material

    root, data = read_bundle_metadata(path)
    if data.get("kind") == "ensemble" and data.get("members"):  # family and conditions: those of its members
        member = read_bundle_metadata(root / str(data["members"][0]))[1]
        data = {**data, "autoencoder": member.get("autoencoder", {}), "regressor": member.get("regressor", {})}
    try:
        grid = data["grid"]
        material = data.get("material_spec") or data.get("material")
        return {"q": np.asarray(grid["q"], float), "energy": np.asarray(grid["energy"], float),
                "ei_mev": float(grid["ei_mev"]), "mask_sha256": grid.get("mask_sha256"),
                "family": data.get("autoencoder", {}).get("family"),
                "requires_temperature": "temperature" in (data.get("regressor") or {}).get("conditions", ()),
                "material": Material.from_dict(material) if isinstance(material, dict) else ALUMINIUM}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} metadata.json lacks the grid description: {exc}") from exc


def group_members(ws: Any) -> list[tuple[str | None, Any]]:
    """[(name, workspace)] of a WorkspaceGroup's members, or [(None, ws)] for a single workspace."""
    if hasattr(ws, "getNames"):
        return [(name, ws.getItem(i)) for i, name in enumerate(ws.getNames())]
    return [(None, ws)]


def check_grid_matches_bundle(ws: Any, path: str | os.PathLike) -> str | None:
    """The problem with predicting from ``ws`` with the bundle at ``path`` (missing, not a bundle, other grid)."""
    try:
        desc = bundle_grid_description(path)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    try:
        layout = sqw_layout(ws)
    except ValueError as exc:
        return str(exc)
    nh, nb = ws.getNumberHistograms(), ws.blocksize()
    n_e, n_q = (nb, nh) if layout == "sofqw" else (nh, nb)
    if (n_e, n_q) != (desc["energy"].size, desc["q"].size):
        return (f"mismatched grid: the workspace has n_E × n_Q = {n_e} × {n_q} bins but the model bundle {path} "
                f"was trained on {desc['energy'].size} × {desc['q'].size}: run PreprocessForML with "
                "ModelBundle set to this bundle first")
    return None


def check_members_for_bundle(members: Sequence[tuple[str | None, Any]], bundle: str | None) -> dict[str, str]:
    """validateInputs issues ({property: message}) of using ``members`` with the bundle at ``bundle``: no
    bundle, a missing or unreadable bundle (ModelBundle), a member not a χ''(|Q|,E) workspace or on another
    grid (InputWorkspace, the first such member named)."""
    issues: dict[str, str] = {}
    if not members:
        return {"InputWorkspace": "the group is empty"}
    if bundle is None:
        issues["ModelBundle"] = "no model bundle given and none is shipped in models/: set ModelBundle"
    for name, member in members:
        problem = check_sqw_workspace(member)
        if problem is None and bundle is not None:
            problem = check_grid_matches_bundle(member, bundle)
            if problem and ("does not exist" in problem or "not a phonon-ml" in problem or "unreadable" in problem):
                issues["ModelBundle"] = problem
                problem = None
        if problem:
            issues["InputWorkspace"] = (f"{name}: " if name else "") + problem
            break
    return issues


def member_without_temperature(members: Sequence[tuple[str | None, Any]], log_name: str) -> str | None:
    """The label of the first member with no sample temperature log (``log_name`` or the fallbacks), or None."""
    for name, member in members:
        if sample_temperature(member, log_name)[1] is None:
            return name or "the workspace"
    return None


def number_problems(alg: Any, temperatures: Sequence[str] = ("Temperature",), finite: Sequence[str] = ()
                    ) -> dict[str, str]:
    """validateInputs problems of numeric properties that Mantid's validators cannot express: a temperature set
    above :data:`~phonon_ml_core.data.validation.MAX_TEMPERATURE_K` (an upper bound would make an unset EMPTY_DBL
    default invalid), and arrays (force constants, N/m) with NaN or infinity. Unset properties are skipped."""
    from phonon_ml_core.data.validation import check_temperature

    issues: dict[str, str] = {}
    for name in temperatures:
        prop = alg.getProperty(name)
        if not prop.isDefault:
            try:
                check_temperature(float(prop.value), name)
            except ValueError as exc:
                issues[name] = str(exc)
    for name in finite:
        values = np.asarray(alg.getProperty(name).value, dtype=float)
        if values.size and not np.all(np.isfinite(values)):
            issues[name] = f"{name} must be finite numbers (N/m), got {values.tolist()}"
    return issues
