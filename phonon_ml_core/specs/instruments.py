"""Direct-geometry spectrometers: chopper settings from ``resins``, detector coverage from facility sources.

Chopper packages, frequencies and Ei limits are read from the installed ``resins`` (its PyChop models,
``resins/instrument_data/*.yaml``) when first asked for, so they follow resins. The detector 2θ range (degrees,
the powder scattering-angle range used for kinematic coverage) and the facility are this project's data,
each with its source.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from phonon_ml_core.specs._io import SpecError
from phonon_ml_core.specs.standard import STANDARD_CHOPPER_FREQUENCY, STANDARD_CHOPPER_PACKAGE, STANDARD_INSTRUMENT

#: resins keyword of the frequency that sets the resolution, per instrument (Fermi chopper unless noted).
_FREQUENCY_SETTING = {"CNCS": "resolution_disk_frequency", "LET": "resolution_frequency"}

#: name: (facility, 2θ range deg, source of the range, default Ei meV).
_STATIC = {
    "ARCS": ("SNS", (4.5, 137.15),
             ("conventions §2 (the measured Al coverage); detectors −28° to 135° horizontal, ±27° vertical: "
             "D. L. Abernathy et al., Rev. Sci. Instrum. 83, 015114 (2012)"), 50.0),
    "SEQUOIA": ("SNS", (2.0, 60.0),
                ("detectors −30° to +60° horizontal, ±18° vertical: G. E. Granroth et al., J. Phys.: Conf. Ser. 251, "
                "012058 (2010); low-angle limit (beam stop) approximate"), 60.0),
    "CNCS": ("SNS", (3.0, 135.0),
             ("detectors −50° to +135° horizontal, ±16° vertical: G. Ehlers et al., Rev. Sci. Instrum. 82, 085108 "
             "(2011); low-angle limit approximate"), 12.0),
    "HYSPEC": ("SNS", (3.0, 135.0),
               ("movable detector vessel spanning 60° of 2θ, positionable up to 135°: B. Winn et al., EPJ Web Conf. "
               "83, 03017 (2015); this is the envelope of all positions: pass the range of the actual setting"), 30.0),
    "MAPS": ("ISIS", (3.0, 60.0),
             ("low-angle banks 3°–20°, high-angle banks to 60°: R. A. Ewings et al., Rev. Sci. Instrum. 90, 035110 "
             "(2019); ISIS MAPS instrument page"), 80.0),
    "MARI": ("ISIS", (3.0, 135.0),
             ("low-angle bank 3°–13°, high-angle bank 12°–135°: ISIS MARI instrument page "
             "(https://www.isis.stfc.ac.uk/instruments/mari/)"), 50.0),
    "MERLIN": ("ISIS", (3.0, 135.0),
               ("detectors −45° to 135° horizontal, ±30° vertical: R. I. Bewley et al., Physica B 385–386, 1029 "
               "(2006); ISIS MERLIN instrument page; low-angle limit approximate"), 50.0),
    "LET": ("ISIS", (3.0, 140.0),
            ("detectors −40° to 140° horizontal, ±30° vertical: R. I. Bewley, J. W. Taylor, S. M. Bennington, "
            "Nucl. Instrum. Methods A 637, 128 (2011); low-angle limit approximate"), 20.0),
}
#: Defaults that differ from resins' defaults (the project's standard experiment, conventions §2).
_DEFAULT_OVERRIDES = {STANDARD_INSTRUMENT: (STANDARD_CHOPPER_PACKAGE, STANDARD_CHOPPER_FREQUENCY)}
_RESINS_SOURCE = "resins {version}: PyChop model '{model}' (resins/instrument_data/{file}.yaml)"


@dataclass(frozen=True)
class InstrumentInfo:
    """What the project knows about one direct-geometry spectrometer.

    Attributes:
        name: resins name, e.g. "ARCS". facility: e.g. "SNS".
        default_chopper_package / default_chopper_frequency (Hz): the defaults used when none is given.
        chopper_packages: packages resins models. chopper_frequencies: allowed frequencies (Hz) of
        ``frequency_setting`` (the resins keyword: "chopper_frequency" for Fermi instruments).
        ei_range_mev: (low, high) Ei that resins models for any package; ei_range_by_package: per package.
        two_theta_deg: detector scattering-angle range (deg). default_ei_mev: Ei used when none is given.
        source: where the 2θ range comes from. settings_source: where the chopper settings and Ei limits come from.
    """

    name: str
    facility: str
    default_chopper_package: str
    default_chopper_frequency: int
    chopper_packages: tuple[str, ...]
    chopper_frequencies: tuple[int, ...]
    frequency_setting: str
    ei_range_mev: tuple[float, float]
    ei_range_by_package: tuple[tuple[str, float, float], ...]
    two_theta_deg: tuple[float, float]
    default_ei_mev: float
    source: str
    settings_source: str

    def ei_range_for(self, chopper_package: str) -> tuple[float, float]:
        """Ei limits (meV) that resins models for ``chopper_package``."""
        for name, lo, hi in self.ei_range_by_package:
            if name == chopper_package:
                return (lo, hi)
        raise SpecError(f"{self.name} has no chopper package {chopper_package!r}: allowed "
                        f"{list(self.chopper_packages)}")

    def check_settings(self, chopper_package: str, chopper_frequency: int, ei_mev: float) -> None:
        """Raise :class:`SpecError` naming the setting and the allowed values when resins cannot model it."""
        if chopper_package not in self.chopper_packages:
            raise SpecError(f"chopper package {chopper_package!r} is not available on {self.name}: allowed "
                            f"{list(self.chopper_packages)} (default {self.default_chopper_package!r})")
        if chopper_frequency not in self.chopper_frequencies:
            raise SpecError(f"chopper frequency {chopper_frequency!r} Hz is not allowed on {self.name} "
                            f"({self.frequency_setting}): allowed {list(self.chopper_frequencies)} Hz "
                            f"(default {self.default_chopper_frequency})")
        lo, hi = self.ei_range_for(chopper_package)
        if not (ei_mev > 0 and lo <= ei_mev <= hi):
            raise SpecError(f"Ei = {ei_mev} meV is outside the range {self.name} with {chopper_package!r} "
                            f"covers ({lo:g}–{hi:g} meV, from resins): choose Ei in that range")


def list_instruments() -> list[str]:
    """Names of the supported instruments."""
    return list(_STATIC)


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise SpecError(f"instrument must be a name such as 'ARCS', got {type(name).__name__}")
    key = name.strip().upper()
    if key not in _STATIC:
        raise SpecError(f"unknown instrument {name!r}: choose one of {list_instruments()}")
    return key


def get_instrument(name: str) -> InstrumentInfo:
    """The :class:`InstrumentInfo` of ``name`` (case-insensitive)."""
    return _instrument(_canonical(name))


@cache
def _instrument(name: str) -> InstrumentInfo:
    from importlib.metadata import version

    from resins import Instrument

    facility, two_theta, source, default_ei = _STATIC[name]
    inst = Instrument.from_default(name)
    model = inst.default_model
    packages = tuple(inst.possible_options_for_model(model)["chopper_package"])
    setting = _FREQUENCY_SETTING.get(name, "chopper_frequency")
    by_package = []
    freqs: tuple[int, ...] = ()
    for p in packages:
        data = inst.get_model_data(model, chopper_package=p)
        lo, hi = data.restrictions["e_init"]
        by_package.append((p, float(lo), float(hi)))
        if p == inst.default_option_for_configuration(model, "chopper_package"):
            freqs = tuple(range(*data.restrictions[setting]))
            default_freq = int(data.defaults[setting])
    default_package = inst.default_option_for_configuration(model, "chopper_package")
    default_package, default_freq = _DEFAULT_OVERRIDES.get(name, (default_package, default_freq))
    ei_range = (min(lo for _, lo, _ in by_package), max(hi for _, _, hi in by_package))
    settings_source = _RESINS_SOURCE.format(version=version("resins"), model=model, file=name.lower())
    return InstrumentInfo(name=name, facility=facility, default_chopper_package=default_package,
                          default_chopper_frequency=default_freq, chopper_packages=packages,
                          chopper_frequencies=freqs, frequency_setting=setting, ei_range_mev=ei_range,
                          ei_range_by_package=tuple(by_package), two_theta_deg=two_theta,
                          default_ei_mev=default_ei, source=source, settings_source=settings_source)
