"""Reading a model bundle's metadata.json without importing torch (fast checks, e.g. Mantid validation)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
