"""Named regressor targets: the material's force constants (N/m), then the linewidth γ when it is learned.

The regressor's outputs are never addressed by position ("the sixth output"): :class:`Targets` names them
from the material (``Material.names``) and adds :data:`LINEWIDTH` when the data set has γ labels that vary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import numpy as np

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import Material

#: The name of the intrinsic-linewidth target (HWHM = γ·E, dimensionless).
LINEWIDTH = "linewidth"


@dataclass(frozen=True)
class Targets:
    """What the regressor predicts: ``constants`` (the material's names, N/m) and optionally the linewidth γ."""

    constants: tuple[str, ...]
    linewidth: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "constants", tuple(str(n) for n in self.constants))
        if not self.constants or LINEWIDTH in self.constants:
            raise ValueError(f"targets need at least one force constant name and {LINEWIDTH!r} only as the "
                             f"linewidth flag, got {list(self.constants)}")

    @classmethod
    def from_names(cls, names: Sequence[str]) -> Targets:
        """Targets from a list of output names (e.g. a bundle's metadata ``targets``); γ may only come last."""
        names = [str(n) for n in names]
        has_lw = bool(names) and names[-1] == LINEWIDTH
        return cls(tuple(names[:-1] if has_lw else names), has_lw)

    @property
    def names(self) -> tuple[str, ...]:
        """All output names in regressor order."""
        return self.constants + ((LINEWIDTH,) if self.linewidth else ())

    @property
    def n_constants(self) -> int:
        return len(self.constants)

    @property
    def n_outputs(self) -> int:
        return len(self.names)

    def split(self, values: Any) -> tuple[Any, Any | None]:
        """(..., n_outputs) values (numpy or torch) → (constants (..., n_constants), γ (...) or None)."""
        if values.shape[-1] != self.n_outputs:
            raise ValueError(f"{values.shape[-1]} outputs for the targets {list(self.names)}")
        k = self.n_constants
        return values[..., :k], (values[..., k] if self.linewidth else None)


def training_targets(simulated: Spectrum, material: Material, keep: np.ndarray,
                     predict_linewidth: bool) -> tuple[Targets, np.ndarray]:
    """The named targets and labels (N_kept, n_outputs) of a simulated set of ``material``.

    ``keep``: indices of the spectra kept (:func:`phonon_ml_core.learn.inputs.spectra_tensor`). γ is a target
    when ``predict_linewidth`` and the set has γ labels that vary (a set simulated without a γ range has none).
    """
    if simulated.force_constants is None:
        raise ValueError("the simulated data set has no force_constants: the regressor needs labelled spectra "
                         "(make one with `phonon-ml simulate --count N`)")
    fc = np.asarray(simulated.force_constants, float)
    fc = fc if fc.ndim == 2 else np.broadcast_to(fc, (simulated.n_spectra, fc.shape[-1]))
    if fc.shape[-1] != material.n_constants:
        raise ValueError(f"the data set holds {fc.shape[-1]} force constants per spectrum but its material "
                         f"{material.name} has {material.n_constants} ({', '.join(material.names)}): regenerate it "
                         "with `phonon-ml simulate --material M`")
    y = fc
    lw = simulated.linewidths() if simulated.linewidth is not None else None
    learn_lw = bool(predict_linewidth and lw is not None and np.ptp(lw) > 0)
    if learn_lw:
        y = np.concatenate([y, lw[:, None]], axis=1)
    y = y[keep]
    if not np.all(np.isfinite(y)):
        raise ValueError("the simulated data set has non-finite force constants or linewidths: regenerate it")
    return Targets(material.names, learn_lw), y
