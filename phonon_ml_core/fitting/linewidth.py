"""Intrinsic linewidth models of a fit: HWHM = γ·E ("proportional") or γ0 + γ1·E ("affine", energy dependent).

The simulator's damped-harmonic-oscillator kernel (:func:`phonon_ml_core.simulator.one_phonon.dho_kernel`) takes γ
per spectrum, or rows (γ0 meV, γ1). In a fit, γ1 keeps the name "linewidth" (dimensionless, as before) and the
constant part γ0 is the extra nuisance parameter "linewidth_offset" (meV). See docs/fitting.md, "Nuisance model".
"""
from __future__ import annotations

import torch

from phonon_ml_core.fitting.defaults import LINEWIDTH_MODELS

#: Name of the constant part γ0 of an affine linewidth (HWHM = γ0 + γ1·E), meV.
LINEWIDTH_OFFSET = "linewidth_offset"
#: Default start and bounds of γ0 (meV) when fitted.
OFFSET_START = 0.2
OFFSET_BOUNDS = (0.01, 3.0)


def check_linewidth_model(model: str) -> str:
    """The model name, normalised; a clear error for anything else."""
    name = str(model).lower()
    if name not in LINEWIDTH_MODELS:
        raise ValueError(f"unknown linewidth model {model!r}: choose one of {', '.join(LINEWIDTH_MODELS)} "
                         "(proportional: HWHM = γ·E; affine: HWHM = γ0 + γ1·E)")
    return name


def simulator_linewidth(gamma1: torch.Tensor, gamma0: torch.Tensor | None = None) -> torch.Tensor:
    """What the simulator takes: γ1 (B,) alone (HWHM = γ1·E), or (B, 2) rows (γ0 meV, γ1) when γ0 is given."""
    if gamma0 is None:
        return gamma1
    return torch.stack((gamma0.clamp_min(0.0), gamma1.clamp_min(0.0)), -1)  # finite-difference steps may cross 0
