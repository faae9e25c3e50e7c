"""The powder INS simulator: batched, differentiable, torch (see :mod:`.powder`), for any material and experiment.

The public names load lazily (PEP 562): importing the package does not import torch.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "PowderSimulator": "powder", "SimulationSettings": "settings", "UnstableForceConstantsError": "settings",
    "get_simulator": "factory", "simulate_spectrum": "single",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"phonon_ml_core.simulator.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'phonon_ml_core.simulator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
