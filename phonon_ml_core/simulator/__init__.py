"""The powder INS simulator: batched, differentiable, torch (see :mod:`.powder`), for any material and experiment.

The public names load lazily (PEP 562): importing the package does not import torch.
"""
from __future__ import annotations

from phonon_ml_core._lazy import lazy_exports

_PUBLIC = {
    "PowderSimulator": "powder", "SimulationSettings": "settings", "UnstableForceConstantsError": "settings",
    "get_simulator": "factory", "simulate_spectrum": "single",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
