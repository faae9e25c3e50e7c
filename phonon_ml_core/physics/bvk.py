"""Born–von Kármán force-constant models of cubic monatomic crystals (conventions §1).

The coupling tensor of bond l is φ(l) = −∂²V/∂u(0)∂u(l); the dynamical matrix is
D(q) = Σ_l φ(l) [1 − cos(q·r_l)] and M ω² e = D(q) e. Force constants are in N/m.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from phonon_ml_core.physics.symmetry import LATTICE_BASIS, Shell, cubic_shells
from phonon_ml_core.physics.units import FC_TO_MEV2, MEV_PER_THZ, N_PER_M_TO_EV_PER_A2

#: High-symmetry points of the cubic Brillouin zones in Cartesian units of 2π/a (conventional cell).
SPECIAL_POINTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "fcc": {"Γ": (0.0, 0.0, 0.0), "X": (0.0, 1.0, 0.0), "W": (0.5, 1.0, 0.0), "L": (0.5, 0.5, 0.5),
            "K": (0.75, 0.75, 0.0)},
    "bcc": {"Γ": (0.0, 0.0, 0.0), "H": (0.0, 1.0, 0.0), "N": (0.5, 0.5, 0.0), "P": (0.5, 0.5, 0.5)},
    "sc": {"Γ": (0.0, 0.0, 0.0), "X": (0.0, 0.5, 0.0), "M": (0.5, 0.5, 0.0), "R": (0.5, 0.5, 0.5)},
}
#: Default dispersion paths.
DEFAULT_PATHS = {"fcc": ("Γ", "X", "W", "L", "Γ", "K"), "bcc": ("Γ", "H", "N", "Γ", "P", "H"),
                 "sc": ("Γ", "X", "M", "Γ", "R", "X")}
#: Zone-boundary points reported with results (conventions §6): fcc X, L; bcc H, N, P; sc X, M, R.
ZONE_BOUNDARY_POINTS = {"fcc": ("X", "L"), "bcc": ("H", "N", "P"), "sc": ("X", "M", "R")}
FCC_SPECIAL_POINTS = SPECIAL_POINTS["fcc"]
FCC_DEFAULT_PATH = DEFAULT_PATHS["fcc"]


def validate_force_constants(fc: np.ndarray, n: int, names: tuple[str, ...] = ()) -> np.ndarray:
    """Check a (…, n) force-constant array (N/m): right length, finite. Returns a float64 copy."""
    arr = np.asarray(fc, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] != n:
        order = f" (order {', '.join(names)})" if names else ""
        raise ValueError(f"expected {n} force constants per set{order}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("force constants contain NaN or infinity: give finite values in N/m")
    return arr


@dataclass
class BvKModel:
    """A cubic monatomic Born–von Kármán model with ``n_shells`` neighbour shells.

    Attributes:
        force_constants: N/m, in the order of :attr:`names` ([1XX, 1XY, 1ZZ, 2XX, 2YY] for two fcc shells).
        lattice_parameter: conventional cubic lattice parameter a, Å.
        mass: atomic mass, u.
        lattice: 'fcc', 'bcc' or 'sc'.
        n_shells: number of neighbour shells.
        symbol: chemical symbol for the phonopy structure, or None (the masses are set explicitly either way).

    A material's model comes from :meth:`phonon_ml_core.specs.Material.bvk_model` (its constants, a(T), mass).
    """

    force_constants: np.ndarray
    lattice_parameter: float
    mass: float
    lattice: str = "fcc"
    n_shells: int = 2
    symbol: str | None = None

    def __post_init__(self) -> None:
        self.force_constants = validate_force_constants(self.force_constants, len(self.names), self.names)
        if self.force_constants.ndim != 1:
            raise ValueError("a BvKModel holds one force-constant set; use the simulator for batches")
        if not (np.isfinite(self.lattice_parameter) and self.lattice_parameter > 0):
            raise ValueError(f"lattice parameter must be positive (Å), got {self.lattice_parameter}")
        if not (np.isfinite(self.mass) and self.mass > 0):
            raise ValueError(f"mass must be positive (u), got {self.mass}")

    # -- geometry -----------------------------------------------------------------
    @property
    def shells(self) -> tuple[Shell, ...]:
        return cubic_shells(self.lattice, self.n_shells)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for s in self.shells for n in s.names)

    @property
    def bond_vectors(self) -> np.ndarray:
        """All bond vectors r_l, Å, shape (L, 3)."""
        return np.concatenate([s.vectors for s in self.shells]) * self.lattice_parameter

    @property
    def bond_basis(self) -> np.ndarray:
        """Coupling-tensor basis (L, n_constants, 3, 3): φ(l) = Σ_k c_k basis[l, k]."""
        n = len(self.names)
        out = []
        start = 0
        for s in self.shells:
            b = np.zeros((len(s.vectors), n, 3, 3))
            b[:, start:start + len(s.names)] = s.basis
            start += len(s.names)
            out.append(b)
        return np.concatenate(out)

    @property
    def atomic_volume(self) -> float:
        """Volume per atom, Å³."""
        return self.lattice_parameter**3 / len(LATTICE_BASIS[self.lattice])

    def coupling_tensors(self) -> np.ndarray:
        """φ(l) for every bond, N/m, shape (L, 3, 3)."""
        return np.einsum("k,lkij->lij", self.force_constants, self.bond_basis)

    # -- phonons ------------------------------------------------------------------
    def dynamical_matrix(self, q: np.ndarray) -> np.ndarray:
        """D(q) in N/m for Cartesian wavevectors ``q`` (1/Å), shape (..., 3) → (..., 3, 3)."""
        q = np.asarray(q, dtype=float)
        phase = 1.0 - np.cos(q @ self.bond_vectors.T)  # (..., L)
        return np.einsum("...l,lij->...ij", phase, self.coupling_tensors())

    def energies_and_eigenvectors(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Phonon energies (meV, ascending; negative = imaginary) and eigenvectors (columns) at ``q`` (1/Å)."""
        w2, vec = np.linalg.eigh(self.dynamical_matrix(q) * (FC_TO_MEV2 / self.mass))
        return np.sign(w2) * np.sqrt(np.abs(w2)), vec

    def energies(self, q: np.ndarray) -> np.ndarray:
        """Phonon energies in meV at Cartesian ``q`` (1/Å), shape (..., 3); negative = imaginary."""
        return self.energies_and_eigenvectors(q)[0]

    def frequencies_thz(self, q: np.ndarray) -> np.ndarray:
        """Phonon frequencies in THz (negative = imaginary) at Cartesian ``q`` (1/Å)."""
        return self.energies(q) / MEV_PER_THZ

    def is_stable(self, n_grid: int = 12) -> bool:
        """True when no imaginary frequency occurs on an n_grid³ sampling of the Brillouin zone."""
        return bool(stability_check(self.force_constants[None], self, n_grid)[0])

    # -- elasticity ---------------------------------------------------------------
    def elastic_tensor(self) -> np.ndarray:
        """C_αβγδ in GPa from the long-wavelength limit D_αγ(q) ≈ Ω Σ C_αβγδ q_β q_δ."""
        r = self.bond_vectors
        t = np.einsum("lag,lb,ld->abgd", self.coupling_tensors(), r, r) / (2 * self.atomic_volume)
        return t * 10.0  # N/m/Å = 1e10 Pa = 10 GPa

    def elastic_constants(self) -> dict[str, float]:
        """C11, C12, C44 in GPa."""
        c = self.elastic_tensor()
        c11, c44 = c[0, 0, 0, 0], c[0, 1, 0, 1]
        c12 = 2 * c[0, 0, 1, 1] - c44
        return {"C11": float(c11), "C12": float(c12), "C44": float(c44)}

    @property
    def density(self) -> float:
        """Mass density, kg/m³."""
        from scipy.constants import atomic_mass
        return self.mass * atomic_mass / (self.atomic_volume * 1e-30)

    # -- phonopy ------------------------------------------------------------------
    def to_phonopy(self, supercell: int = 3):
        """A :class:`phonopy.Phonopy` object carrying this model's force constants.

        The unit cell is the conventional cubic cell; the supercell ``supercell``³ of it must be large
        enough that every bond is shorter than half the supercell edge.
        """
        from phonopy import Phonopy
        from phonopy.structure.atoms import PhonopyAtoms

        a = self.lattice_parameter
        basis = LATTICE_BASIS[self.lattice]
        if max(s.distance for s in self.shells) >= supercell / 2:
            raise ValueError(f"supercell {supercell}³ too small for {self.n_shells} shells: increase it")
        symbol = self.symbol or "H"  # phonopy needs a valid symbol; the masses below are what count
        unit = PhonopyAtoms(symbols=[symbol] * len(basis), cell=np.eye(3) * a, scaled_positions=basis,
                            masses=[self.mass] * len(basis))
        primitive = {"fcc": "F", "bcc": "I", "sc": None}[self.lattice]
        ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * supercell, primitive_matrix=primitive)
        ph.force_constants = self.supercell_force_constants(ph.supercell.scaled_positions, supercell)
        return ph

    def supercell_force_constants(self, scaled_positions: np.ndarray, supercell: int) -> np.ndarray:
        """Full real-space force constants Φ(i, j) in eV/Å² for atoms of a cubic supercell.

        Φ(0, l) = −φ(l) and Φ(0, 0) = Σ_l φ(l) (acoustic sum rule), conventions §1.
        """
        pos = np.asarray(scaled_positions) * supercell  # units of a
        d = pos[None, :, :] - pos[:, None, :]
        d -= supercell * np.round(d / supercell)
        lookup = {tuple(np.round(v * 2).astype(int)): phi for v, phi in zip(self.bond_vectors / self.lattice_parameter,
                                                                            self.coupling_tensors())}
        n = len(pos)
        fc = np.zeros((n, n, 3, 3))
        keys = np.round(d * 2).astype(int)
        for i in range(n):
            for j in range(n):
                phi = lookup.get(tuple(keys[i, j]))
                if phi is not None:
                    fc[i, j] = -phi
            fc[i, i] = -fc[i].sum(axis=0)
        return fc * N_PER_M_TO_EV_PER_A2

    # -- dispersion ---------------------------------------------------------------
    def special_point(self, name: str) -> np.ndarray:
        """Cartesian wavevector (1/Å) of the high-symmetry point ``name`` of this lattice's Brillouin zone."""
        points = SPECIAL_POINTS[self.lattice]
        if name not in points:
            raise ValueError(f"unknown special point {name!r} for {self.lattice}: choose from {sorted(points)}")
        return np.array(points[name]) * (2 * np.pi / self.lattice_parameter)

    def zone_boundary_frequencies_thz(self) -> dict[str, list[float]]:
        """Frequencies (THz, ascending) of the three branches at the zone-boundary points of conventions §6
        (fcc X, L; bcc H, N, P; sc X, M, R)."""
        return {p: np.sort(self.frequencies_thz(self.special_point(p))).tolist()
                for p in ZONE_BOUNDARY_POINTS[self.lattice]}

    def dispersion(self, path: tuple[str, ...] | None = None, points_per_segment: int = 60):
        """Energies (meV) along a path of special points (default :data:`DEFAULT_PATHS` of the lattice).
        Returns (distance 1/Å, energies (n, 3), ticks)."""
        path = DEFAULT_PATHS[self.lattice] if path is None else path
        points = SPECIAL_POINTS[self.lattice]
        unknown = [p for p in path if p not in points]
        if unknown:
            raise ValueError(f"unknown special points {unknown}: choose from {sorted(points)}")
        qs, dist, ticks, total = [], [], [(0.0, path[0])], 0.0
        for p0, p1 in itertools.pairwise(path):
            a, b = self.special_point(p0), self.special_point(p1)
            t = np.linspace(0, 1, points_per_segment)
            seg = a + t[:, None] * (b - a)
            qs.append(seg)
            dist.append(total + t * np.linalg.norm(b - a))
            total += np.linalg.norm(b - a)
            ticks.append((total, p1))
        return np.concatenate(dist), self.energies(np.concatenate(qs)), ticks

    def plot_dispersion(self, ax=None, label: str | None = None):
        """Plot the dispersion (meV, with a THz axis) on ``ax`` (a new figure when None); returns the axes."""
        import matplotlib
        if ax is None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        dist, e, ticks = self.dispersion()
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        lines = ax.plot(dist, e, color="C0")
        if label:
            lines[0].set_label(label)
            ax.legend()
        ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks])
        for t, _ in ticks:
            ax.axvline(t, color="0.8", lw=0.8)
        ax.set_xlim(dist[0], dist[-1])
        ax.set_ylim(0, None)
        ax.set_ylabel("Energy (meV)")
        sec = ax.secondary_yaxis("right", functions=(lambda x: x / MEV_PER_THZ, lambda x: x * MEV_PER_THZ))
        sec.set_ylabel("Frequency (THz)")
        ax.set_title("BvK " + ", ".join(f"{n}={v:.2f}" for n, v in zip(self.names, self.force_constants)), fontsize=8)
        return ax


def bz_sample(lattice: str, lattice_parameter: float, n: int) -> np.ndarray:
    """A shifted n³ Monkhorst–Pack sampling of the primitive Brillouin zone, Cartesian 1/Å (n³, 3)."""
    prim = {"fcc": np.array([[0, .5, .5], [.5, 0, .5], [.5, .5, 0]]),
            "bcc": np.array([[-.5, .5, .5], [.5, -.5, .5], [.5, .5, -.5]]),
            "sc": np.eye(3)}[lattice] * lattice_parameter
    recip = 2 * np.pi * np.linalg.inv(prim).T  # rows are reciprocal vectors
    f = (np.arange(n) + 0.5) / n - 0.5
    frac = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1).reshape(-1, 3)
    return frac @ recip


def stability_q_points(lattice: str, lattice_parameter: float, n_grid: int = 12, mesh_density: int = 16) -> np.ndarray:
    """Symmetry-distinct wavevectors (Cartesian, 1/Å) where stability is checked.

    The n_grid³ Brillouin-zone sample and the simulator's reciprocal-space mesh (mesh_density points per
    2π/a), each reduced to one representative per set of cubic images (energies are equal at R q).
    """
    q = bz_sample(lattice, lattice_parameter, n_grid)
    j = (np.arange(mesh_density) + 0.5) / mesh_density
    a, b, c = np.meshgrid(j, j, j, indexing="ij")
    keep = (a >= b) & (b >= c)
    mesh = np.stack((a[keep], b[keep], c[keep]), -1) * (2 * np.pi / lattice_parameter)
    canon = np.sort(np.abs(np.concatenate([q, mesh])), axis=1)[:, ::-1]
    return np.unique(np.round(canon, 10), axis=0)


def stability_check(fc: np.ndarray, model: BvKModel, n_grid: int = 12, tol_mev2: float = 1e-6) -> np.ndarray:
    """For each force-constant set (N, n_constants), True when the set is dynamically stable.

    Stable means ω² > 0 at the symmetry-distinct points of the Brillouin-zone sample and of the simulator's
    mesh (:func:`stability_q_points`), and a positive-definite elastic tensor (Born criteria, the
    long-wavelength limit). Sylvester's criterion on each 3×3 dynamical matrix (no eigenvalues needed), chunked:
    fast and bounded in memory.
    """
    import torch

    from phonon_ml_core.physics.eigen3 import PACKED, all_eigenvalues_above

    fc = validate_force_constants(fc, len(model.names))
    q = stability_q_points(model.lattice, model.lattice_parameter, n_grid)
    phase = 1.0 - np.cos(q @ model.bond_vectors.T)  # (P, L)
    geo = np.einsum("pl,lkij->kpij", phase, model.bond_basis)  # (K, P, 3, 3)
    geo6 = torch.as_tensor(np.stack([geo[..., i, j] for i, j in PACKED], -1))  # (K, P, 6)
    fct = torch.as_tensor(fc)
    stable = np.empty(len(fc), dtype=bool)
    for start in range(0, len(fc), 2048):  # chunks bound the memory
        d = torch.einsum("nk,kpm->npm", fct[start:start + 2048], geo6)  # ω² = d · FC_TO_MEV2 / M
        ok = all_eigenvalues_above(d, tol_mev2 * model.mass / FC_TO_MEV2)  # every ω² > tol_mev2 (Sylvester)
        stable[start:start + 2048] = ok.all(1).numpy()
    # long-wavelength (Born) stability: the elastic tensor must be positive definite
    r = model.bond_vectors
    geo_c = np.einsum("lkag,lb,ld->kabgd", model.bond_basis, r, r)
    c = np.einsum("nk,kabgd->nabgd", fc, geo_c)
    c11, c44, c12 = c[:, 0, 0, 0, 0], c[:, 0, 1, 0, 1], 2 * c[:, 0, 0, 1, 1] - c[:, 0, 1, 0, 1]
    return stable & (c11 > np.abs(c12)) & (c44 > 0) & (c11 + 2 * c12 > 0)
