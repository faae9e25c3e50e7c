"""Where the phonon-ml Mantid algorithms live and whether Mantid is importable (no torch, no Mantid import).

The algorithms are the files in ``plugins/`` (one per algorithm, named after it: Mantid takes the
algorithm name from the Python class, docs/mantid_api.md §0); setup.py installs them as
``phonon_ml_core/mantid_algorithms``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The algorithms in ``plugins/``, one file each, named after the algorithm (= the Python class name).
PLUGIN_ALGORITHMS: tuple[str, ...] = ("SimulatePowderINS", "PreprocessForML", "TrainPhononVAE",
                                      "PredictForceConstants", "FitForceConstantsNelderMead", "AdaptPhononModel")
#: Mantid category of the algorithms.
CATEGORY = "Inelastic\\PhononML"
#: Directory name of the plugins inside an installed package (setup.py maps plugins/ there).
INSTALLED_PLUGIN_PACKAGE = "mantid_algorithms"


def plugins_directory() -> Path:
    """The directory holding the plugin files (:data:`PLUGIN_ALGORITHMS`).

    ``$PHONON_ML_MANTID_PLUGINS`` when set, else the repository's ``plugins/`` (beside the ``phonon_ml_core``
    package) when it holds the plugins, else the installed copy ``phonon_ml_core/mantid_algorithms/``.
    FileNotFoundError when none holds them.
    """
    package = Path(__file__).resolve().parents[1]  # phonon_ml_core/
    candidates = [package.parent / "plugins", package / INSTALLED_PLUGIN_PACKAGE]
    env = os.environ.get("PHONON_ML_MANTID_PLUGINS")
    if env:
        candidates.insert(0, Path(env))
    for c in candidates:
        if all((c / f"{name}.py").is_file() for name in PLUGIN_ALGORITHMS):
            return c
    raise FileNotFoundError("the phonon-ml Mantid plugins were not found in " + ", ".join(map(str, candidates))
                            + ": reinstall phonon-ml (the plugins ship as phonon_ml_core/mantid_algorithms)")


def plugin_files() -> list[Path]:
    """The plugin files, in :data:`PLUGIN_ALGORITHMS` order."""
    d = plugins_directory()
    return [d / f"{name}.py" for name in PLUGIN_ALGORITHMS]


def mantid_available() -> bool:
    """True when ``mantid.api`` imports (Mantid installed in this Python)."""
    try:
        import mantid.api  # noqa: F401
    except ImportError:
        return False
    return True
