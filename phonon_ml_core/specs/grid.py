"""The (E, |Q|) grid a spectrum lives on, its kinematic coverage and the standard ARCS grid.

Arrays on a grid have shape ``(n_E, n_Q)``: rows are energy transfer (meV), columns |Q| (1/Å)
(conventions §2).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np

from phonon_ml_core.physics.units import HBAR2_OVER_2MN_MEV_A2
from phonon_ml_core.specs.standard import STANDARD_EI_MEV

#: Scattering-angle coverage of ARCS (degrees), conventions §2.
ARCS_TWO_THETA_RANGE_DEG: tuple[float, float] = (4.5, 137.15)


def centres_to_edges(centres: np.ndarray) -> np.ndarray:
    """Bin edges at the midpoints of ``centres`` (extrapolated by half a bin at both ends)."""
    c = np.asarray(centres, dtype=float)
    if c.ndim != 1 or c.size < 2:
        raise ValueError(f"need at least two bin centres in a 1-D array, got shape {c.shape}")
    if not np.all(np.diff(c) > 0):
        raise ValueError("bin centres must be strictly increasing")
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def edges_to_centres(edges: np.ndarray) -> np.ndarray:
    """Bin centres halfway between consecutive ``edges``."""
    e = np.asarray(edges, dtype=float)
    return 0.5 * (e[1:] + e[:-1])


def q_limits(energy_mev: np.ndarray, ei_mev: float, two_theta_deg: tuple[float, float]
             ) -> tuple[np.ndarray, np.ndarray]:
    """|Q| (1/Å) reached at the smallest and largest scattering angle for each energy transfer.

    NaN where the energy transfer exceeds Ei (no final neutron).
    """
    e = np.asarray(energy_mev, dtype=float)
    ki2 = ei_mev / HBAR2_OVER_2MN_MEV_A2
    ef = ei_mev - e
    kf2 = np.where(ef > 0, ef, np.nan) / HBAR2_OVER_2MN_MEV_A2
    cos_lo, cos_hi = np.cos(np.radians(two_theta_deg[0])), np.cos(np.radians(two_theta_deg[1]))
    q_lo = np.sqrt(ki2 + kf2 - 2 * np.sqrt(ki2 * kf2) * cos_lo)
    q_hi = np.sqrt(ki2 + kf2 - 2 * np.sqrt(ki2 * kf2) * cos_hi)
    return q_lo, q_hi


def kinematic_mask(q: np.ndarray, energy: np.ndarray, ei_mev: float,
                   two_theta_deg: tuple[float, float] = ARCS_TWO_THETA_RANGE_DEG) -> np.ndarray:
    """Pixels whose bin centre is reached by a direct-geometry spectrometer (bool, (n_E, n_Q)).

    A pixel is valid when its |Q| centre lies between the |Q| reached at the smallest and
    largest scattering angle at that energy transfer, and E < Ei.
    """
    q_lo, q_hi = q_limits(energy, ei_mev, two_theta_deg)
    q = np.asarray(q, dtype=float)[None, :]
    with np.errstate(invalid="ignore"):
        return (q >= q_lo[:, None]) & (q <= q_hi[:, None])


@lru_cache(maxsize=1)
def _standard_mask() -> np.ndarray:
    text = resources.files("phonon_ml_core").joinpath("specs/standard_mask.json").read_text()
    spec = json.loads(text)
    mask = np.zeros(spec["shape"], dtype=bool)
    for row, (lo, hi) in enumerate(spec["row_column_ranges"]):
        mask[row, lo:hi + 1] = True
    mask.setflags(write=False)
    return mask


@dataclass(frozen=True, eq=False)
class Grid:
    """A regular-or-not (E, |Q|) grid with its valid-pixel mask.

    Attributes:
        q: |Q| bin centres, 1/Å, shape (n_Q,).
        energy: energy-transfer bin centres, meV, shape (n_E,).
        mask: bool (n_E, n_Q), True where the instrument covers the pixel.
        ei_mev: incident energy, meV.
        two_theta_deg: scattering-angle range (degrees) used for kinematic coverage.
        q_edges, energy_edges: bin edges; midpoints of the centres unless given.
    """

    q: np.ndarray
    energy: np.ndarray
    mask: np.ndarray
    ei_mev: float = STANDARD_EI_MEV
    two_theta_deg: tuple[float, float] = ARCS_TWO_THETA_RANGE_DEG
    q_edges: np.ndarray = field(default=None)  # type: ignore[assignment]
    energy_edges: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        q = np.asarray(self.q, dtype=float)
        e = np.asarray(self.energy, dtype=float)
        mask = np.asarray(self.mask, dtype=bool)
        if mask.shape != (e.size, q.size):
            raise ValueError(f"mask shape {mask.shape} does not match (n_E, n_Q) = ({e.size}, {q.size})")
        if not np.isfinite(self.ei_mev) or self.ei_mev <= 0:
            raise ValueError(f"incident energy must be a positive number of meV, got {self.ei_mev}")
        qe = centres_to_edges(q) if self.q_edges is None else np.asarray(self.q_edges, dtype=float)
        ee = centres_to_edges(e) if self.energy_edges is None else np.asarray(self.energy_edges, dtype=float)
        if qe.shape != (q.size + 1,) or ee.shape != (e.size + 1,):
            raise ValueError("bin edges must have one more entry than the centres")
        for name, val in (("q", q), ("energy", e), ("mask", mask), ("q_edges", qe), ("energy_edges", ee)):
            val = val.copy()
            val.setflags(write=False)
            object.__setattr__(self, name, val)
        object.__setattr__(self, "two_theta_deg", tuple(float(x) for x in self.two_theta_deg))
        object.__setattr__(self, "ei_mev", float(self.ei_mev))

    @property
    def shape(self) -> tuple[int, int]:
        """(n_E, n_Q)."""
        return (self.energy.size, self.q.size)

    @property
    def n_valid(self) -> int:
        return int(self.mask.sum())

    def mask_hash(self) -> str:
        """SHA-256 of the mask bits and the grid axes: identifies a grid in model bundles."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.mask, dtype=np.uint8).tobytes())
        h.update(np.round(self.q, 9).tobytes())
        h.update(np.round(self.energy, 9).tobytes())
        return h.hexdigest()

    def same_as(self, other: Grid, atol: float = 1e-6) -> bool:
        """True when both grids have the same axes (to ``atol``) and mask."""
        return (self.shape == other.shape and np.allclose(self.q, other.q, atol=atol)
                and np.allclose(self.energy, other.energy, atol=atol) and np.array_equal(self.mask, other.mask))

    def to_dict(self) -> dict:
        """JSON-serialisable description (axes, Ei, angles, mask hash)."""
        return {"q": self.q.tolist(), "energy": self.energy.tolist(), "ei_mev": self.ei_mev,
                "two_theta_deg": list(self.two_theta_deg), "mask_sha256": self.mask_hash(),
                "n_valid": self.n_valid}

    @classmethod
    def from_axes(cls, q: np.ndarray, energy: np.ndarray, ei_mev: float = STANDARD_EI_MEV,
                  two_theta_deg: tuple[float, float] = ARCS_TWO_THETA_RANGE_DEG,
                  mask: np.ndarray | None = None) -> Grid:
        """A grid from its centres; the mask is the standard one on the standard axes, else kinematic."""
        q = np.asarray(q, dtype=float)
        energy = np.asarray(energy, dtype=float)
        if mask is None:
            std = standard_grid()
            if (q.shape == std.q.shape and energy.shape == std.energy.shape and np.allclose(q, std.q)
                    and np.allclose(energy, std.energy) and ei_mev == std.ei_mev
                    and tuple(two_theta_deg) == std.two_theta_deg):
                mask = std.mask
            else:
                mask = kinematic_mask(q, energy, ei_mev, two_theta_deg)
        grid = cls(q=q, energy=energy, mask=mask, ei_mev=ei_mev, two_theta_deg=two_theta_deg)
        grid.check_coverage()
        return grid

    def check_coverage(self) -> None:
        """Raise a clear error for a grid the instrument cannot reach."""
        if self.energy.min() >= self.ei_mev:
            raise ValueError(f"Ei = {self.ei_mev} meV is below the grid's energy range "
                             f"({self.energy.min():.3g}–{self.energy.max():.3g} meV): raise Ei or lower the energies")
        if not self.mask.any():
            raise ValueError(f"the grid has no kinematic coverage at Ei = {self.ei_mev} meV and 2θ = "
                             f"{self.two_theta_deg} deg: choose |Q| between the limits of q_limits()")


@lru_cache(maxsize=1)
def standard_grid() -> Grid:
    """The standard ARCS Ei = 50 meV aluminium grid: 70 energies × 101 |Q|, 4144 valid pixels."""
    q = np.round(np.arange(101) * 0.1, 10)
    energy = np.linspace(10.0, 45.0, 70)
    return Grid(q=q, energy=energy, mask=_standard_mask(), ei_mev=STANDARD_EI_MEV,
                two_theta_deg=ARCS_TWO_THETA_RANGE_DEG)
