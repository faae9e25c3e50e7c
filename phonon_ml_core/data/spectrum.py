"""The one spectrum type that flows through phonon-ml, and its HDF5 layout (conventions §4).

A :class:`Spectrum` holds one spectrum, intensity (n_E, n_Q), or a set of N spectra on the same
grid, intensity (N, n_E, n_Q). Rows are energy transfer (meV), columns |Q| (1/Å).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any
from collections.abc import Iterator

import h5py
import numpy as np

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.specs.grid import ARCS_TWO_THETA_RANGE_DEG, Grid
from phonon_ml_core.data.jsonio import json_default
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.validation import check_axis
from phonon_ml_core.specs.experiment import STANDARD_EXPERIMENT, Experiment
from phonon_ml_core.specs.material import Material

#: Names of the five fcc two-shell constants (conventions §1): files without a material and five constants.
FCC_TWO_SHELL_NAMES: tuple[str, ...] = ("1XX", "1XY", "1ZZ", "2XX", "2YY")

QUANTITIES = ("chi''", "S")
NORMALIZATIONS = ("mean", "none")


@dataclass(eq=False)
class Spectrum:
    """Powder INS spectrum (or a set of spectra) on an (E, |Q|) grid.

    Attributes:
        intensity: χ''(|Q|,E) or S(|Q|,E), shape (n_E, n_Q) or (N, n_E, n_Q); NaN outside coverage.
        grid: the axes and valid-pixel mask.
        temperature: sample temperature in K, scalar or (N,); None when unknown.
        quantity: "chi''" (dynamical susceptibility) or "S" (scattering function).
        normalization: "mean" (conventions §3) or "none".
        errors: one-sigma uncertainties, same shape as intensity, or None.
        force_constants: N/m, (K,) or (N, K) in the order of :attr:`names`, when known.
        linewidth: intrinsic damping γ (dimensionless, HWHM = γ·E), scalar or (N,), when known (simulated).
        instrument, sample: free text.
        metadata: further JSON-serialisable facts (provenance, lattice parameter, sampling ranges).
        material: the :class:`~phonon_ml_core.specs.Material` the spectrum belongs to, when known.
        experiment: the :class:`~phonon_ml_core.specs.Experiment` it was measured or simulated for, when known.
    """

    intensity: np.ndarray
    grid: Grid
    temperature: float | np.ndarray | None = None
    quantity: str = "chi''"
    normalization: str = "none"
    errors: np.ndarray | None = None
    force_constants: np.ndarray | None = None
    linewidth: float | np.ndarray | None = None
    instrument: str = "ARCS"
    sample: str = "aluminium"
    metadata: dict[str, Any] = field(default_factory=dict)
    material: Material | None = None
    experiment: Experiment | None = None

    def __post_init__(self) -> None:
        self.intensity = np.asarray(self.intensity)
        if self.intensity.ndim not in (2, 3) or self.intensity.shape[-2:] != self.grid.shape:
            raise ValueError(f"intensity shape {self.intensity.shape} does not match the grid (n_E, n_Q) = "
                             f"{self.grid.shape}; rows must be energy transfer and columns |Q|")
        if self.quantity not in QUANTITIES:
            raise ValueError(f"quantity must be one of {QUANTITIES}, got {self.quantity!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.errors is not None:
            self.errors = np.asarray(self.errors)
            if self.errors.shape != self.intensity.shape:
                raise ValueError(f"errors shape {self.errors.shape} differs from intensity shape "
                                 f"{self.intensity.shape}")
            if np.any(self.errors[np.isfinite(self.errors)] < 0):
                raise ValueError("errors must be non-negative (they are one-sigma uncertainties)")
        if self.temperature is not None:
            t = np.asarray(self.temperature, dtype=float)
            if t.ndim == 1 and t.size != self.n_spectra:
                raise ValueError(f"{t.size} temperatures for {self.n_spectra} spectra")
            self.temperature = float(t) if t.ndim == 0 else t
        if self.force_constants is not None:
            fc = np.asarray(self.force_constants, dtype=float)
            k = fc.shape[-1] if fc.ndim else 0
            if self.material is not None and k != self.material.n_constants:
                raise ValueError(f"{k} force constants for {self.material.name}, which has {self.material.n_constants} "
                                 f"({', '.join(self.material.names)})")
            want = (k,) if not self.is_set else (self.n_spectra, k)
            if k == 0 or (fc.shape != want and not (self.is_set and fc.shape == (k,))):
                raise ValueError(f"force_constants shape {fc.shape}, expected {want}")
            self.force_constants = fc
        for name, cls in (("material", Material), ("experiment", Experiment)):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), cls):
                raise TypeError(f"Spectrum.{name} must be a {cls.__name__} or None, "
                                f"got {type(getattr(self, name)).__name__}")
        if self.linewidth is not None:
            lw = np.asarray(self.linewidth, dtype=float)
            if lw.ndim == 1 and lw.size != self.n_spectra or lw.ndim > 1:
                raise ValueError(f"linewidth shape {lw.shape}: expected a scalar or ({self.n_spectra},)")
            if not np.all(np.isfinite(lw) & (lw >= 0)):
                raise ValueError("linewidth (γ) must be finite and ≥ 0")
            self.linewidth = float(lw) if lw.ndim == 0 else lw

    # -- shape helpers -------------------------------------------------------------
    @property
    def is_set(self) -> bool:
        """True for a set of spectra (intensity of shape (N, n_E, n_Q))."""
        return self.intensity.ndim == 3

    @property
    def n_spectra(self) -> int:
        return self.intensity.shape[0] if self.is_set else 1

    @property
    def names(self) -> tuple[str, ...] | None:
        """Names of the force constants (from the material; the fcc two-shell names for 5 constants without one)."""
        if self.material is not None:
            return self.material.names
        if self.force_constants is not None and np.shape(self.force_constants)[-1] == len(FCC_TWO_SHELL_NAMES):
            return FCC_TWO_SHELL_NAMES
        return None

    @property
    def mask(self) -> np.ndarray:
        return self.grid.mask

    def linewidths(self) -> np.ndarray | None:
        """γ of each spectrum as an (N,) array, or None when unknown."""
        if self.linewidth is None:
            return None
        return np.broadcast_to(np.asarray(self.linewidth, dtype=float), (self.n_spectra,)).copy()

    def temperatures(self) -> np.ndarray:
        """Temperature of each spectrum (K) as an (N,) array; NaN where unknown."""
        if self.temperature is None:
            return np.full(self.n_spectra, np.nan)
        return np.broadcast_to(np.asarray(self.temperature, dtype=float), (self.n_spectra,)).copy()

    def __len__(self) -> int:
        return self.n_spectra

    def __getitem__(self, i: int) -> Spectrum:
        """The i-th spectrum of a set, as a single spectrum."""
        if not self.is_set:
            if i in (0, -1):
                return self
            raise IndexError(i)
        t = None if self.temperature is None else self.temperatures()[i]
        fc = None
        if self.force_constants is not None:
            fc = self.force_constants if self.force_constants.ndim == 1 else self.force_constants[i]
        err = None if self.errors is None else self.errors[i]
        lw = None if self.linewidth is None else float(self.linewidths()[i])
        return replace(self, intensity=self.intensity[i], temperature=t, force_constants=fc, errors=err,
                       linewidth=lw, metadata=dict(self.metadata))

    def __iter__(self) -> Iterator[Spectrum]:
        for i in range(self.n_spectra):
            yield self[i]

    @classmethod
    def stack(cls, spectra: list[Spectrum]) -> Spectrum:
        """Stack single spectra on the same grid into a set."""
        if not spectra:
            raise ValueError("no spectra to stack")
        first = spectra[0]
        for s in spectra[1:]:
            if (s.material is None) != (first.material is None) or (
                    s.material is not None and not s.material.same_as(first.material)):
                raise ValueError("spectra belong to different materials: stack spectra of one material")
            if not s.grid.same_as(first.grid):
                raise ValueError("spectra are on different grids: preprocess them onto one grid first")
            if s.quantity != first.quantity or s.normalization != first.normalization:
                raise ValueError("spectra differ in quantity or normalisation")
        inten = np.concatenate([s.intensity.reshape(-1, *first.grid.shape) for s in spectra])
        temps = np.concatenate([s.temperatures() for s in spectra])
        fcs = None
        if all(s.force_constants is not None for s in spectra):
            fcs = np.concatenate([np.broadcast_to(s.force_constants, (s.n_spectra, np.shape(s.force_constants)[-1]))
                                  for s in spectra])
        errs = None
        if all(s.errors is not None for s in spectra):
            errs = np.concatenate([s.errors.reshape(-1, *first.grid.shape) for s in spectra])
        lws = None
        if all(s.linewidth is not None for s in spectra):
            lws = np.concatenate([s.linewidths() for s in spectra])
        return replace(first, intensity=inten, temperature=temps, force_constants=fcs, errors=errs, linewidth=lws,
                       metadata=dict(first.metadata))

    # -- operations ----------------------------------------------------------------
    def masked(self) -> Spectrum:
        """NaN outside the grid's mask."""
        inten = np.where(self.mask, self.intensity, np.nan)
        err = None if self.errors is None else np.where(self.mask, self.errors, np.nan)
        return replace(self, intensity=inten, errors=err)

    def normalized(self) -> Spectrum:
        """Mean-normalised copy (conventions §3); errors scaled by the same span. Idempotent."""
        if self.normalization == "mean":
            return self
        inten = np.where(self.mask, self.intensity, np.nan)
        v = inten[..., self.mask]
        span = (np.nanmax(v, -1) - np.nanmin(v, -1))[..., None, None]
        out = mean_normalize(inten, self.mask)
        err = None if self.errors is None else self.errors / span
        return replace(self, intensity=out, errors=err, normalization="mean")

    def q_averaged(self) -> np.ndarray:
        """Intensity averaged over the valid |Q| pixels at each energy, shape (..., n_E)."""
        inten = np.where(self.mask, self.intensity, np.nan)
        with np.errstate(invalid="ignore"):
            return np.nanmean(inten, axis=-1)

    # -- HDF5 ----------------------------------------------------------------------
    def to_hdf5(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write in the conventions §4 layout, atomically."""
        p = check_output_path(path, overwrite)
        with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
            write_spectrum_group(f, self)

    @classmethod
    def from_hdf5(cls, path: str | os.PathLike) -> Spectrum:
        """Read a file in the conventions §4 layout (the project's own and the shared real data)."""
        p = os.fspath(path)
        with open_hdf5(p) as f:
            return read_spectrum_group(f, source=p)


def write_spectrum_group(f: h5py.Group, s: Spectrum) -> None:
    """Write ``s`` into an open HDF5 file or group."""
    d = f.create_dataset("q", data=s.grid.q)
    d.attrs["units"] = "1/Angstrom"
    d = f.create_dataset("energy", data=s.grid.energy)
    d.attrs["units"] = "meV"
    f.create_dataset("q_edges", data=s.grid.q_edges).attrs["units"] = "1/Angstrom"
    f.create_dataset("energy_edges", data=s.grid.energy_edges).attrs["units"] = "meV"
    f.create_dataset("mask", data=s.grid.mask.astype(np.uint8)).attrs["meaning"] = "1 = valid pixel"
    chunks = (1, *s.grid.shape) if s.is_set else None
    d = f.create_dataset("intensity", data=s.intensity, chunks=chunks)
    d.attrs["meaning"] = f"{s.quantity}(|Q|,E), rows = energy, columns = |Q|, NaN outside coverage"
    if s.errors is not None:
        f.create_dataset("errors", data=s.errors, chunks=chunks)
    if s.temperature is not None:
        f.create_dataset("temperature", data=s.temperature).attrs["units"] = "K"
    if s.force_constants is not None:
        d = f.create_dataset("force_constants", data=s.force_constants)
        d.attrs["units"] = "N/m"
        d.attrs["order"] = ",".join(s.names or ())
    if s.linewidth is not None:
        f.create_dataset("linewidth", data=s.linewidth).attrs["meaning"] = "γ, HWHM = γ·E"
    f.attrs["quantity"] = s.quantity
    f.attrs["normalization"] = s.normalization
    f.attrs["ei_mev"] = s.grid.ei_mev
    f.attrs["two_theta_deg"] = np.asarray(s.grid.two_theta_deg)
    f.attrs["instrument"] = s.instrument
    f.attrs["sample"] = s.sample
    f.attrs["metadata_json"] = json.dumps(s.metadata, default=json_default)
    if s.material is not None:
        f.attrs["material_json"] = json.dumps(s.material.to_dict(), default=json_default)
    if s.experiment is not None:
        f.attrs["experiment_json"] = json.dumps(s.experiment.to_dict(), default=json_default)


def read_spectrum_group(f: h5py.Group, source: str = "") -> Spectrum:
    """Read a :class:`Spectrum` from an open HDF5 file or group in the conventions §4 layout."""
    missing = [k for k in ("q", "energy", "intensity") if k not in f]
    if missing:
        raise ValueError(f"{source or 'file'} lacks the dataset(s) {missing} of the phonon-ml spectrum layout "
                         "(conventions §4); for Mantid or NXSPE files use `phonon-ml preprocess`")
    q = f["q"][()]
    energy = f["energy"][()]
    for axis, values, unit in (("q", q, "1/Å"), ("energy", energy, "meV")):
        check_axis(values, f"{source or 'file'}: the /{axis} axis ({unit})")
    inten = f["intensity"][()]
    ei = _incident_energy(f, q, energy, source)
    tt = (tuple(np.asarray(f.attrs["two_theta_deg"]).tolist()) if "two_theta_deg" in f.attrs
          else ARCS_TWO_THETA_RANGE_DEG)
    if inten.shape[-2:] != (energy.size, q.size):
        if inten.shape[-2:] == (q.size, energy.size):
            raise ValueError(f"{source}: intensity is (n_Q, n_E); the layout needs rows = energy, columns = |Q|")
        raise ValueError(f"{source}: intensity shape {inten.shape} does not match energy ({energy.size}) "
                         f"× q ({q.size})")
    if "mask" in f:
        mask = f["mask"][()].astype(bool)
    else:
        finite = np.isfinite(inten)
        mask = finite.all(0) if finite.ndim == 3 else finite
        std = Grid.from_axes(q, energy, ei_mev=ei, two_theta_deg=tt)
        if not mask.any():
            mask = std.mask
    kw = {}
    if "q_edges" in f and "energy_edges" in f:
        kw = {"q_edges": f["q_edges"][()], "energy_edges": f["energy_edges"][()]}
    grid = Grid(q=q, energy=energy, mask=mask, ei_mev=ei, two_theta_deg=tt, **kw)
    meta = json.loads(_attr_str(f.attrs.get("metadata_json", "{}")))
    for k, v in f.attrs.items():
        if k not in ("quantity", "normalization", "ei_mev", "two_theta_deg", "instrument", "sample", "metadata_json",
                     "material_json", "experiment_json"):
            meta.setdefault(k, _plain(v))
    if source:
        meta.setdefault("source_file", source)
    return Spectrum(
        intensity=inten,
        grid=grid,
        temperature=f["temperature"][()] if "temperature" in f else None,
        quantity=_attr_str(f.attrs.get("quantity", "chi''")),
        normalization=_attr_str(f.attrs.get("normalization", "none")),
        errors=f["errors"][()] if "errors" in f else None,
        force_constants=f["force_constants"][()] if "force_constants" in f else None,
        linewidth=f["linewidth"][()] if "linewidth" in f else None,
        instrument=_attr_str(f.attrs.get("instrument", "")),
        sample=_attr_str(f.attrs.get("sample", "")),
        metadata=meta,
        material=_spec_attr(f, "material_json", Material, source),
        experiment=_spec_attr(f, "experiment_json", Experiment, source),
    )


def _incident_energy(f: h5py.Group, q: np.ndarray, energy: np.ndarray, source: str) -> float:
    """Ei (meV) of a file: its ``ei_mev`` attribute, else its stored experiment's; the standard grid's axes
    imply the standard experiment (ARCS, 50 meV). Anything else without an Ei is an error, never a silent 50 meV."""
    if "ei_mev" in f.attrs:
        return float(f.attrs["ei_mev"])
    if "experiment_json" in f.attrs:
        return float(json.loads(_attr_str(f.attrs["experiment_json"]))["ei_mev"])
    std = STANDARD_EXPERIMENT.grid
    if q.shape == std.q.shape and energy.shape == std.energy.shape and np.allclose(q, std.q) \
            and np.allclose(energy, std.energy):
        return STANDARD_EXPERIMENT.ei_mev
    raise ValueError(f"{source or 'file'} records no incident energy (root attribute ei_mev, conventions §4): add it, "
                     "or preprocess the measured run with `phonon-ml preprocess --ei E`")


def _spec_attr(f: h5py.Group, key: str, cls: type, source: str) -> Any:
    """The Material/Experiment stored in attribute ``key`` (None when absent; files before the specs)."""
    if key not in f.attrs:
        return None
    try:
        return cls.from_dict(json.loads(_attr_str(f.attrs[key])))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{source or 'file'}: its stored {cls.__name__.lower()} is invalid ({exc}); "
                         "rewrite the file with this version of phonon-ml") from exc


def _attr_str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def open_hdf5(path: str | os.PathLike) -> h5py.File:
    """``path`` opened read-only; FileNotFoundError when it is missing, ValueError when it is not HDF5."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p} does not exist")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise ValueError(f"{p} is not a readable HDF5 file (truncated or another format?): {exc}") from exc
