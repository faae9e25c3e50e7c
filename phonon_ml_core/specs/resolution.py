"""Instrument energy resolution σ(E) of an experiment, from the ``resins`` library (PyChop models)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Resolution:
    """Gaussian energy resolution σ(E) of a direct-geometry spectrometer (PyChop model via resins).

    Built by :meth:`phonon_ml_core.specs.Experiment.resolution` (the experiment holds the settings).

    Attributes:
        instrument: resins instrument name, e.g. "ARCS".
        chopper_package: chopper setting, e.g. "ARCS-100-1.5-AST".
        chopper_frequency: frequency (Hz) of the chopper that sets the resolution (the Fermi chopper; CNCS's
            resolution disk; LET's resolution chopper: ``InstrumentInfo.frequency_setting``).
        ei_mev: incident energy, meV.
        scale: multiplies σ (1 = as modelled; 0 = no instrumental broadening).
    """

    instrument: str
    chopper_package: str
    chopper_frequency: int
    ei_mev: float
    scale: float = 1.0

    def sigma(self, energy_mev: np.ndarray) -> np.ndarray:
        """Gaussian σ (meV) at energy transfers ``energy_mev`` (clamped into [−Ei, 0.99 Ei])."""
        e = np.clip(np.abs(np.asarray(energy_mev, dtype=float)), 0.0, 0.99 * self.ei_mev)
        if self.scale == 0:
            return np.zeros_like(e)
        model = _resins_model(self.instrument, self.chopper_package, self.chopper_frequency, float(self.ei_mev))
        flat = e.reshape(-1, 1)
        return self.scale * np.asarray(model.get_characteristics(flat)["sigma"]).reshape(e.shape)

    def fwhm(self, energy_mev: np.ndarray) -> np.ndarray:
        """Full width at half maximum (meV)."""
        return 2 * np.sqrt(2 * np.log(2)) * self.sigma(energy_mev)

    def to_dict(self) -> dict:
        return {"instrument": self.instrument, "chopper_package": self.chopper_package,
                "chopper_frequency": self.chopper_frequency, "ei_mev": self.ei_mev, "scale": self.scale}


@lru_cache(maxsize=16)
def _resins_model(instrument: str, chopper: str, frequency: int, ei: float):
    from resins import Instrument

    from phonon_ml_core.specs.instruments import get_instrument

    setting = get_instrument(instrument).frequency_setting  # the resins keyword of the resolution frequency
    inst = Instrument.from_default(instrument)
    try:
        return inst.get_resolution_function(inst.default_model, chopper_package=chopper, e_init=ei,
                                            **{setting: frequency})
    except Exception as exc:  # resins raises several types for bad settings
        raise ValueError(f"resins cannot model {instrument} with chopper {chopper!r} at {frequency} Hz and "
                         f"Ei = {ei} meV: {exc}") from exc
