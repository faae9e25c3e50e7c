"""A model bundle's metadata.json without torch: reading it, the material, experiment and named targets it
records (bundles written before they were recorded are aluminium on the standard settings), file provenance.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: reading metadata stays free of torch and the specs
    from phonon_ml_core.specs.grid import Grid
    from phonon_ml_core.learn.targets import Targets
    from phonon_ml_core.specs import Experiment, Material


def read_bundle_metadata(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(bundle directory, parsed metadata.json); FileNotFoundError / ValueError naming the problem."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model bundle {p} does not exist")
    meta_path = p / "metadata.json"
    if not p.is_dir() or not meta_path.is_file():
        raise ValueError(f"{p} is not a phonon-ml model bundle (a directory with metadata.json and safetensors "
                         "weights, written by `phonon-ml train` or TrainPhononVAE)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{meta_path} is unreadable or not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} does not hold a JSON object: the bundle is corrupted")
    return p, meta


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_info(path: str | os.PathLike) -> dict[str, Any]:
    """Provenance of an input file: absolute path, SHA-256 and size in bytes."""
    return {"path": os.path.abspath(path), "sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a bundle depends on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import numpy
    import safetensors
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "safetensors": safetensors.__version__}
    try:
        out["phonon-ml"] = version("phonon-ml")
    except PackageNotFoundError:  # not installed as a distribution
        out["phonon-ml"] = "unknown"
    return out


def metadata_material(meta: dict[str, Any]) -> Material:
    """The material recorded in bundle metadata (aluminium for bundles written before it was recorded)."""
    from phonon_ml_core.learn.matching import material_or_default
    from phonon_ml_core.specs import Material

    if meta.get("material") is not None:
        return Material.from_dict(meta["material"])
    names = (meta.get("force_constants") or {}).get("names")
    return material_or_default(None, None if names is None else len(names), "bundle")


def metadata_experiment(meta: dict[str, Any], grid: Grid) -> Experiment:
    """The experiment recorded in bundle metadata (older bundles: the standard settings on their ``grid``)."""
    from phonon_ml_core.learn.matching import experiment_or_default
    from phonon_ml_core.specs import Experiment

    if meta.get("experiment") is not None:
        return Experiment.from_dict(meta["experiment"])
    settings = ((((meta.get("data") or {}).get("simulated") or {}).get("metadata") or {}).get("simulator") or {})
    return experiment_or_default(None, grid, meta.get("instrument"), settings.get("settings"))


def metadata_targets(meta: dict[str, Any], n_outputs: int) -> Targets:
    """The named regressor outputs recorded in bundle metadata (``targets``; older bundles: the material's
    names, plus the linewidth when the regressor has one output more)."""
    from phonon_ml_core.learn.targets import Targets

    if meta.get("targets"):
        targets = Targets.from_names(meta["targets"])
    else:
        names = metadata_material(meta).names
        targets = Targets(names, n_outputs == len(names) + 1)
    if targets.n_outputs != n_outputs:
        raise ValueError(f"the bundle metadata names {targets.n_outputs} targets {list(targets.names)} but the "
                         f"regressor has {n_outputs} outputs: the bundle is inconsistent; retrain it")
    return targets
