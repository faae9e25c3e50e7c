"""PreprocessForML core: a measured spectrum in, a model-ready spectrum on a model's grid out.

Steps (docs/preprocess.md): validate → crop → flux-conserving rebin (with errors) onto the target
grid → intersect with the target mask → energy-dependent background subtraction → S → χ''
(detailed balance) → mean normalisation. A spectrum already on the target grid as mean-normalised
χ'' passes through unchanged.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from phonon_ml_core.specs.grid import Grid, standard_grid
from phonon_ml_core.data.rebin import HALF_AREA_COVERAGE, crop_indices, rebin2d
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.data.validation import check_number, check_spectrum_object, check_temperature
from phonon_ml_core.physics.units import KB_MEV_PER_K
from phonon_ml_core.preprocess.background import (
    DEFAULT_BACKGROUND,
    ESTIMATORS,
    estimate_background,
    subtract_background,
)
from phonon_ml_core.preprocess.measurement import experiment_of, measured_instrument, resolve_material, target_grid
from phonon_ml_core.specs import Material

log = logging.getLogger(__name__)


@dataclass
class PreprocessReport:
    """What :func:`preprocess` did.

    Attributes:
        passthrough: True when the input was already model-ready and returned unchanged.
        steps: the steps applied, in order.
        temperature: sample temperature used for detailed balance (K), or None.
        background_method: the estimator used ("none" when skipped).
        background: b(E) subtracted, per target energy (input units), or None.
        n_target_valid: valid pixels of the target grid.
        n_valid: valid pixels of the output.
        n_lost: target-valid pixels the input does not cover (now invalid).
        seconds: wall time.
    """

    passthrough: bool = False
    steps: list[str] = field(default_factory=list)
    temperature: float | list[float] | None = None
    background_method: str = "none"
    background: list | None = None
    n_target_valid: int = 0
    n_valid: int = 0
    n_lost: int = 0
    seconds: float = 0.0

    @property
    def lost_fraction(self) -> float:
        return self.n_lost / self.n_target_valid if self.n_target_valid else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lost_fraction"] = self.lost_fraction
        return d

    def summary(self) -> str:
        if self.passthrough:
            return "already on the target grid as mean-normalised chi'': passed through unchanged"
        return (f"steps: {', '.join(self.steps)}; {self.n_valid}/{self.n_target_valid} valid pixels "
                f"({self.n_lost} lost to missing coverage); background: {self.background_method}; "
                f"T = {self.temperature} K")


# -- validation -------------------------------------------------------------------------------------
def check_spectrum(s: Spectrum) -> None:
    """Raise ValueError for infinite data, all-NaN data on the valid pixels, or negative errors."""
    x = np.asarray(s.intensity, dtype=float)
    n_inf = int(np.isinf(x).sum())
    if n_inf:
        raise ValueError(f"the spectrum has {n_inf} infinite values: replace them with NaN "
                         "(Mantid: ReplaceSpecialValues) or mask them, then preprocess again")
    if not np.isfinite(x[..., s.mask]).any():
        raise ValueError("the spectrum is all NaN on its valid pixels: nothing to preprocess; "
                         "check the reduction (coverage, masking)")
    if s.errors is not None:
        e = np.asarray(s.errors, dtype=float)
        if np.any(e[np.isfinite(e)] < 0):
            raise ValueError("the spectrum has negative errors: errors must be one-sigma uncertainties ≥ 0")


def resolve_temperature(s: Spectrum, temperature: float | None) -> np.ndarray:
    """Temperatures (K), one per spectrum; ValueError when missing or non-positive."""
    t = s.temperatures() if temperature is None else np.full(s.n_spectra, float(temperature))
    if not np.all(np.isfinite(t)):
        raise ValueError("the sample temperature is unknown but is needed to convert S(|Q|,E) to chi'' "
                         "(detailed balance): pass --temperature T (kelvin) / temperature=T, or add a "
                         "SampleTemp sample log to the file")
    if np.any(t <= 0):
        raise ValueError(f"the sample temperature must be positive (kelvin), got {t.tolist()}: "
                         "pass --temperature T with T > 0 K")
    return t


# -- steps ------------------------------------------------------------------------------------------
def detailed_balance_factor(energy_mev: np.ndarray, temperature_k: float | np.ndarray) -> np.ndarray:
    """π (1 − exp(−E / k_B T)), shape (..., n_E) for T of shape (...,); E in meV, T in K."""
    e = np.asarray(energy_mev, dtype=float)
    t = np.asarray(temperature_k, dtype=float)[..., None]
    return np.pi * -np.expm1(-e / (KB_MEV_PER_K * t))


def to_chi(s: Spectrum, temperature: float | None = None) -> Spectrum:
    """χ''(|Q|,E) = π (1 − e^{−E/k_B T}) S(|Q|,E), as Mantid's ApplyDetailedBalance; errors scaled alike.

    A spectrum that already holds χ'' is returned as is.
    """
    if s.quantity == "chi''":
        return s
    t = resolve_temperature(s, temperature)
    f = detailed_balance_factor(s.grid.energy, t if s.is_set else t[0])[..., None]
    err = None if s.errors is None else s.errors * np.abs(f)
    return replace(s, intensity=s.intensity * f, errors=err, quantity="chi''",
                   temperature=t if s.is_set else float(t[0]), metadata=dict(s.metadata))


def crop(s: Spectrum, energy_range: tuple[float, float], q_range: tuple[float, float]) -> Spectrum:
    """The bins of ``s`` that overlap ``energy_range`` (meV) × ``q_range`` (1/Å)."""
    ie = crop_indices(s.grid.energy_edges, *energy_range)
    iq = crop_indices(s.grid.q_edges, *q_range)
    if ie.stop <= ie.start or iq.stop <= iq.start:
        g = s.grid
        raise ValueError(f"no overlap with the target grid: the input covers E {g.energy_edges[0]:.3g}–"
                         f"{g.energy_edges[-1]:.3g} meV and |Q| {g.q_edges[0]:.3g}–{g.q_edges[-1]:.3g} 1/Å, the "
                         f"target E {energy_range[0]:.3g}–{energy_range[1]:.3g} meV and |Q| {q_range[0]:.3g}–"
                         f"{q_range[1]:.3g} 1/Å: reduce the data over the target range or choose a grid inside "
                         "the data")
    g = s.grid
    grid = Grid(q=g.q[iq], energy=g.energy[ie], mask=g.mask[ie, iq], ei_mev=g.ei_mev, two_theta_deg=g.two_theta_deg,
                q_edges=g.q_edges[iq.start:iq.stop + 1], energy_edges=g.energy_edges[ie.start:ie.stop + 1])
    err = None if s.errors is None else s.errors[..., ie, iq]
    return replace(s, intensity=s.intensity[..., ie, iq], errors=err, grid=grid, metadata=dict(s.metadata))


def _same_axes(a: Grid, b: Grid) -> bool:
    return (a.shape == b.shape and np.allclose(a.q_edges, b.q_edges, atol=1e-9)
            and np.allclose(a.energy_edges, b.energy_edges, atol=1e-9))


def rebin_to_grid(s: Spectrum, grid: Grid, min_coverage: float = HALF_AREA_COVERAGE
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Intensity and errors of ``s`` rebinned onto ``grid``'s edges; NaN where the data cover less than
    ``min_coverage`` of a bin's area (default the half-area rule, conventions §7)."""
    m = s.masked()
    if _same_axes(s.grid, grid):
        return np.asarray(m.intensity, dtype=float), None if m.errors is None else np.asarray(m.errors, dtype=float)
    c = crop(m, (grid.energy_edges[0], grid.energy_edges[-1]), (grid.q_edges[0], grid.q_edges[-1]))
    r = rebin2d(c.intensity, c.grid.energy_edges, c.grid.q_edges, grid.energy_edges, grid.q_edges,
                errors=c.errors, min_coverage=min_coverage)
    return r.intensity, r.errors


def coverage_rule(target: Grid, min_coverage: float = HALF_AREA_COVERAGE) -> float:
    """The covered fraction of a bin's area at which a target-valid pixel is kept.

    ``min_coverage`` (the half-area rule) on any grid whose mask is kinematic; on the standard grid, whose mask
    is the measured coverage itself (``mask.npy``, conventions §2), any coverage keeps a pixel, so data covering
    that mask give exactly it, including its low-|Q| edge bins that reductions cover only partly.
    """
    return 0.0 if target.same_as(standard_grid()) else min_coverage


# -- the pipeline -----------------------------------------------------------------------------------
def preprocess_with_report(spectrum: Spectrum, grid: Grid | None = None, temperature: float | None = None,
                           background: str = DEFAULT_BACKGROUND, *, background_options: dict | None = None,
                           min_coverage: float = HALF_AREA_COVERAGE, normalize: bool = True,
                           max_lost_fraction: float | None = None, material: str | Material | None = None,
                           instrument: str | None = None) -> tuple[Spectrum, PreprocessReport]:
    """:func:`preprocess` that also returns a :class:`PreprocessReport`."""
    t0 = time.perf_counter()
    check_spectrum_object(spectrum, "preprocess: spectrum")
    if temperature is not None:
        check_temperature(temperature, "temperature")
    check_number(min_coverage, "min_coverage", low=0.0, low_inclusive=True, high=1.0)
    target = target_grid(spectrum, instrument) if grid is None else grid
    if background not in ESTIMATORS:
        raise ValueError(f"unknown background estimator {background!r}: choose one of {sorted(ESTIMATORS)}")
    rep = PreprocessReport(n_target_valid=target.n_valid)
    check_spectrum(spectrum)
    on_target = spectrum.grid.same_as(target) or (
        _same_axes(spectrum.grid, target) and not np.any(spectrum.mask & ~target.mask))
    if on_target and spectrum.quantity == "chi''" and spectrum.normalization == "mean":
        out = spectrum
        if temperature is not None:
            out = replace(spectrum, temperature=float(temperature), metadata=dict(spectrum.metadata))
        if material is not None or instrument is not None:
            out = with_specs(out, material, instrument)
        rep.passthrough, rep.n_valid = True, int(spectrum.mask.sum())
        rep.n_lost = target.n_valid - rep.n_valid
        rep.temperature = None if out.temperature is None else np.asarray(out.temperature).tolist()
        rep.seconds = time.perf_counter() - t0
        return out, rep
    # the material and the experiment are checked before the heavy work (unknown names, settings resins lacks)
    experiment_of(target, spectrum.grid.ei_mev, measured_instrument(spectrum, instrument), spectrum.experiment)
    resolve_material(material, spectrum)
    need_chi = spectrum.quantity == "S"
    temps = resolve_temperature(spectrum, temperature) if need_chi else None
    if temps is None and temperature is not None:
        temps = np.full(spectrum.n_spectra, float(temperature))

    y, err = rebin_to_grid(spectrum, target, coverage_rule(target, min_coverage))
    rep.steps.append("crop+rebin" if not _same_axes(spectrum.grid, target) else "mask")
    covered = np.isfinite(y).all(axis=0) if y.ndim == 3 else np.isfinite(y)
    mask = target.mask & covered
    rep.n_valid = int(mask.sum())
    rep.n_lost = target.n_valid - rep.n_valid
    if rep.n_valid == 0:
        g = spectrum.grid
        raise ValueError(f"no overlap with the target grid: none of its {target.n_valid} valid pixels is covered by "
                         f"the input (E {g.energy_edges[0]:.3g}–{g.energy_edges[-1]:.3g} meV, |Q| "
                         f"{g.q_edges[0]:.3g}–{g.q_edges[-1]:.3g} 1/Å): use data measured over the target range "
                         "(Ei, angles) or a grid inside the measured coverage")
    if rep.n_lost:
        log.warning("preprocess: %d of %d valid pixels of the target grid are not covered by the input and "
                    "are masked", rep.n_lost, target.n_valid)
    if max_lost_fraction is not None and rep.lost_fraction > max_lost_fraction:
        raise ValueError(f"the input covers only {rep.n_valid} of the target grid's {target.n_valid} valid pixels "
                         f"({rep.lost_fraction:.1%} lost > {max_lost_fraction:.1%} allowed): use data measured over "
                         "the target range or raise max_lost_fraction")
    y = np.where(mask, y, np.nan)
    err = None if err is None else np.where(mask, err, np.nan)

    already = spectrum.normalization == "mean" or bool(spectrum.metadata.get("background_subtracted", False))
    if background != "none" and not already:
        b = estimate_background(y, mask, target.energy, background, **(background_options or {}))
        y = subtract_background(y, b)
        rep.background_method, rep.background = background, np.asarray(b).tolist()
        rep.steps.append(f"background:{background}")

    meta = dict(spectrum.metadata)
    meta.update({"input_grid_shape": list(spectrum.grid.shape), "input_ei_mev": spectrum.grid.ei_mev,
                 "input_quantity": spectrum.quantity, "input_normalization": spectrum.normalization})
    out_grid = target if rep.n_lost == 0 else Grid(
        q=target.q, energy=target.energy, mask=mask, ei_mev=target.ei_mev, two_theta_deg=target.two_theta_deg,
        q_edges=target.q_edges, energy_edges=target.energy_edges)
    t_out = None
    if temps is not None:
        t_out = temps if spectrum.is_set else float(temps[0])
    elif spectrum.temperature is not None:
        t_out = spectrum.temperature
    out = Spectrum(intensity=y, grid=out_grid, temperature=t_out, quantity=spectrum.quantity,
                   normalization="none", errors=err, force_constants=spectrum.force_constants,
                   instrument=spectrum.instrument, sample=spectrum.sample, metadata=meta)
    out = with_specs(out, material, instrument, ei_mev=spectrum.grid.ei_mev, source=spectrum)
    if need_chi:
        out = to_chi(out, temperature)
        rep.steps.append("detailed-balance")
    rep.temperature = None if out.temperature is None else np.asarray(out.temperature).tolist()
    if normalize:
        out = out.normalized()
        rep.steps.append("mean-normalise")
    rep.seconds = time.perf_counter() - t0
    out.metadata["background_subtracted"] = already or rep.background_method != "none"
    out.metadata["preprocess"] = rep.to_dict()
    return out, rep


def with_specs(out: Spectrum, material: str | Material | None = None, instrument: str | None = None,
               ei_mev: float | None = None, source: Spectrum | None = None) -> Spectrum:
    """``out`` recording its Material (given, else the input's; none when neither has one) and Experiment (the
    instrument given, the input's or the file's, with the input's chopper when it names the same instrument, else
    that instrument's default; the data's Ei; the output grid)."""
    source = out if source is None else source
    mat = resolve_material(material, source)
    inst = measured_instrument(source, instrument)
    exp = experiment_of(out.grid, source.grid.ei_mev if ei_mev is None else ei_mev, inst, source.experiment)
    fc = out.force_constants
    if mat is not None and fc is not None and np.shape(fc)[-1] != mat.n_constants:
        raise ValueError(f"the input has {np.shape(fc)[-1]} force constants but {mat.name} has {mat.n_constants} "
                         f"({', '.join(mat.names)}): give the input's material with --material")
    return replace(out, material=mat, experiment=exp, instrument=inst,
                   sample=out.sample or ("" if mat is None else mat.name),
                   metadata=dict(out.metadata))


def preprocess(spectrum: Spectrum, grid: Grid | None = None, temperature: float | None = None,
               background: str = DEFAULT_BACKGROUND, **options: Any) -> Spectrum:
    """A model-ready spectrum: mean-normalised, background-subtracted χ'' on ``grid``.

    Args:
        spectrum: S(|Q|,E) or χ''(|Q|,E) on any grid (e.g. from :func:`phonon_ml_core.readers.read_spectrum`).
        grid: target grid, default :func:`phonon_ml_core.specs.default_grid` for the spectrum's Ei and
            instrument (the standard grid for ARCS at 50 meV).
        temperature: sample temperature (K), overriding the spectrum's; needed when the input is S.
        background: estimator name (:data:`phonon_ml_core.preprocess.background.ESTIMATORS`), default "minimum"
            (docs/preprocess.md: chosen by the downstream fit NMSE).
        **options: ``background_options`` (dict), ``min_coverage`` (0.5, the half-area rule), ``normalize``
            (True), ``max_lost_fraction`` (None), ``material`` (symbol, file or Material; default the input's;
            none recorded when neither says, which readers take as aluminium), ``instrument`` (default the
            input's, else the standard experiment's).

    Target-valid pixels the input covers less than half of become invalid (the output grid's mask is the
    intersection; the count is in ``metadata["preprocess"]["n_lost"]``). The output records its
    ``material`` and ``experiment`` (instrument, its default chopper, the data's Ei, the output grid).
    """
    return preprocess_with_report(spectrum, grid, temperature, background, **options)[0]
