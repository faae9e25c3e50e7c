"""Cubic point group and symmetry-adapted force-constant shells of cubic Bravais lattices."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

#: Dispersion paths (special-point labels), per lattice.
DISPERSION_PATHS = {"fcc": ("Γ", "X", "W", "L", "Γ", "K"), "bcc": ("Γ", "H", "N", "Γ", "P", "H"),
                    "sc": ("Γ", "X", "M", "Γ", "R", "X")}

#: Elementary symmetric 3×3 patterns in the order used to name constants.
_ELEMENTS = ("XX", "YY", "ZZ", "XY", "XZ", "YZ")
_ELEMENT_INDEX = {"XX": (0, 0), "YY": (1, 1), "ZZ": (2, 2), "XY": (0, 1), "XZ": (0, 2), "YZ": (1, 2)}
#: Order of constants within a shell (puts fcc shells in the Gilat–Nicklow order 1XX, 1XY, 1ZZ; 2XX, 2YY).
_PREFERRED_ORDER = ("XX", "XY", "ZZ", "YY", "YZ", "XZ")

#: Conventional-cell lattice points of the cubic Bravais lattices, in units of a.
LATTICE_BASIS = {
    "sc": np.array([[0.0, 0.0, 0.0]]),
    "bcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
    "fcc": np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]),
}


@lru_cache(maxsize=1)
def cubic_point_group() -> np.ndarray:
    """The 48 operations of O_h as signed permutation matrices, shape (48, 3, 3)."""
    ops = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            r = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs)):
                r[row, col] = s
            ops.append(r)
    return np.array(ops)


def _unit(name: str) -> np.ndarray:
    i, j = _ELEMENT_INDEX[name]
    m = np.zeros((3, 3))
    m[i, j] = m[j, i] = 1.0
    return m


@dataclass(frozen=True)
class Shell:
    """One neighbour shell: its bond vectors and the symmetry-adapted basis of coupling tensors.

    Attributes:
        index: shell number (1 = nearest neighbours).
        representative: bond vector with x ≥ y ≥ z ≥ 0, in units of the lattice parameter a.
        names: constant names, e.g. ("1XX", "1XY", "1ZZ").
        vectors: all bond vectors of the shell, (n_l, 3), units of a.
        basis: coupling-tensor basis for every bond, (n_l, n_constants, 3, 3): φ(l) = Σ_k c_k basis[l, k].
    """

    index: int
    representative: tuple[float, float, float]
    names: tuple[str, ...]
    vectors: np.ndarray
    basis: np.ndarray

    @property
    def distance(self) -> float:
        """Bond length in units of a."""
        return float(np.linalg.norm(self.representative))


def _invariant_basis(r0: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Symmetric tensors invariant under the bond's site group {R : R r0 = ± r0}, named by element."""
    stab = [r for r in cubic_point_group() if np.allclose(r @ r0, r0) or np.allclose(r @ r0, -r0)]
    chosen: list[tuple[str, np.ndarray]] = []
    for name in _ELEMENTS:
        proj = sum(r @ _unit(name) @ r.T for r in stab) / len(stab)
        if np.abs(proj).max() < 1e-12:
            continue
        stacked = np.array([m.ravel() for _, m in chosen] + [proj.ravel()])
        if np.linalg.matrix_rank(stacked, tol=1e-9) <= len(chosen):
            continue
        i, j = _ELEMENT_INDEX[name]
        chosen.append((name, proj / proj[i, j]))
    chosen.sort(key=lambda nm: _PREFERRED_ORDER.index(nm[0]))
    return [n for n, _ in chosen], [m for _, m in chosen]


@cache
def cubic_shells(lattice: str = "fcc", n_shells: int = 2) -> tuple[Shell, ...]:
    """The first ``n_shells`` neighbour shells of a cubic Bravais lattice ('sc', 'bcc' or 'fcc')."""
    if lattice not in LATTICE_BASIS:
        raise ValueError(f"unknown lattice {lattice!r}: choose one of {sorted(LATTICE_BASIS)}")
    if n_shells < 1:
        raise ValueError("n_shells must be at least 1")
    reach = int(np.ceil(np.sqrt(n_shells))) + 2
    cells = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3)), dtype=float)
    points = (cells[:, None, :] + LATTICE_BASIS[lattice][None]).reshape(-1, 3)
    dist = np.round(np.linalg.norm(points, axis=1), 8)
    radii = np.unique(dist[dist > 0])[:n_shells]
    ops = cubic_point_group()
    shells = []
    for k, radius in enumerate(radii, start=1):
        vecs = points[dist == radius]
        canon = vecs[np.lexsort((-vecs[:, 2], -vecs[:, 1], -vecs[:, 0]))]
        rep = next(v for v in canon if v[0] >= v[1] >= v[2] >= 0)
        short, mats = _invariant_basis(rep)
        basis = np.zeros((len(vecs), len(mats), 3, 3))
        for li, v in enumerate(vecs):
            r = next(op for op in ops if np.allclose(op @ rep, v))
            for ci, m in enumerate(mats):
                basis[li, ci] = r @ m @ r.T
        shells.append(Shell(index=k, representative=tuple(float(x) for x in rep),
                            names=tuple(f"{k}{s}" for s in short), vectors=vecs, basis=basis))
    return tuple(shells)
