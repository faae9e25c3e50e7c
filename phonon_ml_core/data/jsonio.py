"""The one home of JSON encoding: numpy and paths in, strict JSON (NaN/inf → null) out, written atomically."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from phonon_ml_core.data.fileio import atomic_path


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for numpy arrays and scalars, paths and objects with ``to_dict``."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return os.fspath(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def to_jsonable(o: Any) -> Any:
    """A plain JSON tree: numpy → lists/scalars, tuples → lists, non-finite floats → None (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): to_jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return to_jsonable(o.tolist())
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, (str, int)) or o is None:
        return o
    return to_jsonable(json_default(o))


def dumps(o: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``o`` (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(o), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, o: Any, indent: int | None = 2) -> Path:
    """Write ``o`` as strict JSON to ``path`` atomically (nothing half-written is left behind)."""
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(dumps(o, indent=indent))
    return p
