"""An experiment as plain, validated, serialisable data: instrument, chopper, Ei, 2θ range and the (E, |Q|) grid.

Units: energies meV, |Q| 1/Å, angles degrees, chopper frequency Hz (conventions §0, §2, §7).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields

import numpy as np

from phonon_ml_core.specs.grid import Grid, centres_to_edges, kinematic_mask, standard_grid
from phonon_ml_core.specs._io import Serialisable, SpecError, check_keys, require
from phonon_ml_core.specs.instruments import get_instrument
from phonon_ml_core.specs.standard import (STANDARD_CHOPPER_FREQUENCY, STANDARD_CHOPPER_PACKAGE, STANDARD_EI_MEV,
                                           STANDARD_INSTRUMENT)

#: The default grid rule (conventions §7), reproducing standard_grid() for ARCS at 50 meV.
N_ENERGY = 70
ENERGY_FRACTIONS = (0.2, 0.9)
N_Q = 101
Q_STEP_AT_50_MEV = 0.1


def default_grid(ei_mev: float, instrument: str = STANDARD_INSTRUMENT,
                 two_theta_deg: tuple[float, float] | None = None) -> Grid:
    """The default (E, |Q|) grid for incident energy ``ei_mev`` on ``instrument`` — the one home of this rule.

    - energy: ``numpy.linspace(0.2·Ei, 0.9·Ei, 70)`` meV;
    - |Q|: 101 centres 0, Δ, …, 100Δ with Δ = 0.1·√(Ei/50) Å⁻¹ (rounded to 1e-10). For energies ≥ 0.2·Ei the
      kinematic limit of any instrument, back-scattering, is k_i + k_f ≤ 9.31·√(Ei/50) Å⁻¹ < 100Δ, so the axis
      spans the whole kinematic range; columns an instrument cannot reach are masked;
    - mask: the measured ARCS mask (``standard_grid()``) for ARCS at Ei = 50 meV and 2θ = 4.5–137.15°, otherwise
      kinematic from Ei and the instrument's 2θ range (bin centre inside the covered |Q| interval; an
      approximation of the half-area rule of conventions §7).

    For ARCS at 50 meV this returns ``standard_grid()`` itself (axes and mask identical).
    """
    require(isinstance(ei_mev, (int, float, np.floating)) and math.isfinite(ei_mev) and ei_mev > 0,
            f"ei_mev = {ei_mev!r}: give a positive incident energy in meV")
    info = get_instrument(instrument)
    tt = info.two_theta_deg if two_theta_deg is None else _two_theta(two_theta_deg)
    ei = float(ei_mev)
    std = standard_grid()
    if info.name == STANDARD_INSTRUMENT and ei == STANDARD_EI_MEV and tt == std.two_theta_deg:
        return std
    energy = np.linspace(ENERGY_FRACTIONS[0] * ei, ENERGY_FRACTIONS[1] * ei, N_ENERGY)
    q = np.round(np.arange(N_Q) * (Q_STEP_AT_50_MEV * math.sqrt(ei / STANDARD_EI_MEV)), 10)
    grid = Grid(q=q, energy=energy, mask=kinematic_mask(q, energy, ei, tt), ei_mev=ei, two_theta_deg=tt)
    grid.check_coverage()
    return grid


def _two_theta(value) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"two_theta_deg must be (low, high) in degrees, got {value!r}") from exc
    require(0 <= lo < hi <= 180, f"two_theta_deg = ({lo}, {hi}): give 0 <= low < high <= 180 degrees")
    return (lo, hi)


# -- grid (de)serialisation -------------------------------------------------------------------------------
def mask_to_runs(mask: np.ndarray) -> list[list[list[int]]]:
    """Per row, the [first, last] column (inclusive) of each run of True pixels."""
    out = []
    for row in np.asarray(mask, dtype=bool):
        padded = np.concatenate([[False], row, [False]]).astype(np.int8)
        d = np.diff(padded)
        starts, ends = np.where(d == 1)[0], np.where(d == -1)[0] - 1
        out.append([[int(s), int(e)] for s, e in zip(starts, ends)])
    return out


def runs_to_mask(runs, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`mask_to_runs`."""
    mask = np.zeros(shape, dtype=bool)
    require(len(runs) == shape[0], f"grid mask has {len(runs)} rows of runs but the grid has {shape[0]} energies")
    for r, row in enumerate(runs):
        for lo, hi in row:
            require(0 <= lo <= hi < shape[1], f"grid mask run [{lo}, {hi}] in row {r} is outside 0..{shape[1] - 1}")
            mask[r, lo:hi + 1] = True
    return mask


def _mask_sha256(mask: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()).hexdigest()


def grid_to_dict(grid: Grid) -> dict:
    """Axes, Ei, 2θ and the mask (run-length per row, with its SHA-256); edges only when not the midpoints."""
    d = {"q": grid.q.tolist(), "energy": grid.energy.tolist(), "ei_mev": grid.ei_mev,
         "two_theta_deg": list(grid.two_theta_deg), "mask_runs": mask_to_runs(grid.mask),
         "mask_sha256": _mask_sha256(grid.mask), "n_valid": grid.n_valid}
    if not np.array_equal(grid.q_edges, centres_to_edges(grid.q)):
        d["q_edges"] = grid.q_edges.tolist()
    if not np.array_equal(grid.energy_edges, centres_to_edges(grid.energy)):
        d["energy_edges"] = grid.energy_edges.tolist()
    return d


def grid_from_dict(data: dict) -> Grid:
    """Inverse of :func:`grid_to_dict`; the mask is checked against its SHA-256 when present."""
    known = {"q", "energy", "ei_mev", "two_theta_deg", "mask_runs", "mask_sha256", "n_valid", "q_edges",
             "energy_edges"}
    check_keys(data, "grid", known, {"q", "energy", "ei_mev", "two_theta_deg", "mask_runs"})
    q, energy = np.asarray(data["q"], dtype=float), np.asarray(data["energy"], dtype=float)
    mask = runs_to_mask(data["mask_runs"], (energy.size, q.size))
    if "mask_sha256" in data:
        require(_mask_sha256(mask) == data["mask_sha256"], "grid mask does not match its mask_sha256: the file "
                "was edited or damaged; restore it or delete mask_sha256 after checking mask_runs")
    grid = Grid(q=q, energy=energy, mask=mask, ei_mev=float(data["ei_mev"]),
                two_theta_deg=_two_theta(data["two_theta_deg"]), q_edges=data.get("q_edges"),
                energy_edges=data.get("energy_edges"))
    std = standard_grid()
    return std if _grids_identical(grid, std) else grid


def _grids_identical(a: Grid, b: Grid) -> bool:
    return (a.shape == b.shape and a.ei_mev == b.ei_mev and a.two_theta_deg == b.two_theta_deg
            and all(np.array_equal(getattr(a, k), getattr(b, k))
                    for k in ("q", "energy", "mask", "q_edges", "energy_edges")))


@dataclass(frozen=True, eq=False)
class Experiment(Serialisable):
    """Instrument, chopper package and frequency (resins names), Ei (meV), detector 2θ range (deg) and grid.

    The grid carries its own Ei and 2θ range; they must equal the experiment's.
    """

    instrument: str = STANDARD_INSTRUMENT
    chopper_package: str = STANDARD_CHOPPER_PACKAGE
    chopper_frequency: int = STANDARD_CHOPPER_FREQUENCY
    ei_mev: float = STANDARD_EI_MEV
    two_theta_deg: tuple[float, float] = (4.5, 137.15)
    grid: Grid = field(default_factory=standard_grid)

    def __post_init__(self) -> None:
        info = get_instrument(self.instrument)
        object.__setattr__(self, "instrument", info.name)
        require(isinstance(self.chopper_frequency, (int, np.integer, float)) and not isinstance(self.chopper_frequency,
                bool) and float(self.chopper_frequency).is_integer(),
                f"chopper_frequency = {self.chopper_frequency!r}: give a whole number of Hz, e.g. "
                f"{info.default_chopper_frequency}")
        object.__setattr__(self, "chopper_frequency", int(self.chopper_frequency))
        require(isinstance(self.ei_mev, (int, float, np.floating)) and math.isfinite(self.ei_mev),
                f"ei_mev = {self.ei_mev!r}: give the incident energy in meV")
        object.__setattr__(self, "ei_mev", float(self.ei_mev))
        object.__setattr__(self, "two_theta_deg", _two_theta(self.two_theta_deg))
        info.check_settings(self.chopper_package, self.chopper_frequency, self.ei_mev)
        require(isinstance(self.grid, Grid), f"grid must be a phonon_ml_core.specs.grid.Grid, got "
                f"{type(self.grid).__name__}")
        require(self.grid.ei_mev == self.ei_mev, f"the grid's Ei ({self.grid.ei_mev} meV) differs from the "
                f"experiment's ({self.ei_mev} meV): build the grid with default_grid({self.ei_mev}, "
                f"{self.instrument!r}) or give matching values")
        require(tuple(self.grid.two_theta_deg) == self.two_theta_deg, f"the grid's 2θ range "
                f"{self.grid.two_theta_deg} differs from the experiment's {self.two_theta_deg} deg: make them equal")

    @classmethod
    def create(cls, instrument: str = STANDARD_INSTRUMENT, ei_mev: float | None = None,
               chopper_package: str | None = None, chopper_frequency: int | None = None, grid: Grid | None = None,
               two_theta_deg: tuple[float, float] | None = None) -> Experiment:
        """A validated experiment; unset values take the instrument's defaults, the grid :func:`default_grid`."""
        info = get_instrument(instrument)
        ei = info.default_ei_mev if ei_mev is None else ei_mev
        package = info.default_chopper_package if chopper_package is None else chopper_package
        freq = info.default_chopper_frequency if chopper_frequency is None else chopper_frequency
        info.check_settings(package, freq, ei)
        if two_theta_deg is None:
            two_theta_deg = info.two_theta_deg if grid is None else grid.two_theta_deg
        tt = _two_theta(two_theta_deg)
        grid = default_grid(ei, info.name, tt) if grid is None else grid
        return cls(instrument=info.name, chopper_package=package, chopper_frequency=freq, ei_mev=ei,
                   two_theta_deg=tt, grid=grid)

    @property
    def info(self):
        """The instrument's :class:`~phonon_ml_core.specs.instruments.InstrumentInfo`."""
        return get_instrument(self.instrument)

    def resolution(self, scale: float = 1.0):
        """The energy resolution (``specs.resolution.Resolution``) of this setting, σ multiplied by ``scale``."""
        from phonon_ml_core.specs.resolution import Resolution

        return Resolution(instrument=self.instrument, chopper_package=self.chopper_package,
                          chopper_frequency=self.chopper_frequency, ei_mev=self.ei_mev, scale=scale)

    def same_as(self, other: Experiment) -> bool:
        """True when settings are equal and the grids have identical axes, edges and mask."""
        return (isinstance(other, Experiment) and self.instrument == other.instrument
                and self.chopper_package == other.chopper_package
                and self.chopper_frequency == other.chopper_frequency and self.ei_mev == other.ei_mev
                and self.two_theta_deg == other.two_theta_deg and _grids_identical(self.grid, other.grid))

    def describe(self) -> str:
        """One human-readable line."""
        g = self.grid
        return (f"{self.instrument} ({self.info.facility}), {self.chopper_package} at {self.chopper_frequency} Hz, "
                f"Ei = {self.ei_mev:g} meV, 2θ {self.two_theta_deg[0]:g}–{self.two_theta_deg[1]:g}°; grid "
                f"{g.shape[0]} E ({g.energy[0]:.3g}–{g.energy[-1]:.3g} meV) × {g.shape[1]} |Q| "
                f"({g.q[0]:.3g}–{g.q[-1]:.3g} 1/Å), {g.n_valid} valid pixels")

    def to_dict(self) -> dict:
        return {"kind_of_spec": "experiment", "format_version": 1, "instrument": self.instrument,
                "chopper_package": self.chopper_package, "chopper_frequency": self.chopper_frequency,
                "ei_mev": self.ei_mev, "two_theta_deg": list(self.two_theta_deg), "grid": grid_to_dict(self.grid)}

    @classmethod
    def from_dict(cls, data: dict) -> Experiment:
        """Inverse of :meth:`to_dict`. Without ``grid`` the default grid for the Ei is used."""
        known = {f.name for f in fields(cls)}
        check_keys(data, "experiment", known, {"instrument", "ei_mev"})
        grid = grid_from_dict(data["grid"]) if "grid" in data else None
        return cls.create(instrument=data["instrument"], ei_mev=data["ei_mev"],
                          chopper_package=data.get("chopper_package"),
                          chopper_frequency=data.get("chopper_frequency"), grid=grid,
                          two_theta_deg=data.get("two_theta_deg"))


#: ARCS, ARCS-100-1.5-AST at 300 Hz, Ei = 50 meV, 2θ 4.5–137.15°, standard_grid() (conventions §2).
STANDARD_EXPERIMENT: Experiment = Experiment()
