"""Reciprocal-space mesh quadrature for powder averages of cubic crystals.

The powder spectrum averaged over a |Q| bin is the average of S(Q,E) over the spherical shell of
that bin. We sample the shell with a uniform cubic grid of Q points (spacing (2π/a)/n, offset by
half a step), Q = q + 2m·(2π/a) with q in the cube [−1, 1)³·(2π/a) — a unit cell of the reciprocal
lattice of every cubic Bravais lattice's conventional cell — and m integer. Phonons depend on q only
(D is periodic), and since D(Rq) = R D(q) Rᵀ for the 48 cubic operations R, eigenproblems are solved
only for the symmetry-distinct q (≈ 1/48 of the cube). Each point contributes
|Q·e_j|² = e_jᵀ (Q Qᵀ) e_j, so the geometry of the shells enters through 3×3 tensors
T_k(q) = ⟨Q Qᵀ⟩ accumulated per irreducible q and |Q| shell, computed once.

Dimensionless units: wavevectors in units of 2π/a (a: conventional lattice parameter).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from phonon_ml_core.physics.eigen3 import PACKED


@dataclass(frozen=True)
class ShellMesh:
    """Irreducible q points and per-sub-shell tensors.

    Attributes:
        q: irreducible q points (x ≥ y ≥ z ≥ 0), units of 2π/a, (N_q, 3).
        shell_edges: sub-shell edges in |Q| (units of 2π/a), (n_sub + 1,).
        tensor: Σ (RQ)(RQ)ᵀ (packed xx, yy, zz, xy, xz, yz) over grid points Q in sub-shell s whose
            reduced wavevector is R⁻¹ q_i, (N_q, n_sub, 6), units (2π/a)².
        count: number of grid points per sub-shell, (n_sub,).
        n: points per 2π/a along each axis.
    """

    q: np.ndarray
    shell_edges: np.ndarray
    tensor: np.ndarray
    count: np.ndarray
    n: int


def _half_offsets(n: int) -> np.ndarray:
    """|offsets| (j + ½)/n, j = 0 … n − 1, of the half-offset grid on the cube [−1, 1) (units of 2π/a)."""
    offsets = (np.arange(2 * n) + 0.5) / n - 1.0  # cube [-1, 1), symmetric under sign flips
    return np.abs(offsets[n:])


def _irreducible_indices(n: int) -> np.ndarray:
    """Index triples j₁ ≥ j₂ ≥ j₃ (0 ≤ j < n) of the irreducible wedge of the half-offset cube grid, (N, 3)."""
    jj = np.arange(n)
    a, b, c = np.meshgrid(jj, jj, jj, indexing="ij")
    keep = (a >= b) & (b >= c)
    return np.stack((a[keep], b[keep], c[keep]), -1)


@lru_cache(maxsize=8)
def irreducible_cube_points(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A uniform sampling of the Brillouin zone of any cubic Bravais lattice, reduced by the cubic point group.

    The grid (j + ½)/n − 1, j = 0 … 2n − 1, per axis (units of 2π/a) samples the cube [−1, 1)³, a period of
    the reciprocal lattice of the sc, bcc and fcc conventional cells, so it samples every Brillouin zone
    uniformly. Returns the irreducible points x ≥ y ≥ z > 0 (units of 2π/a), (N, 3), and their weights (N,):
    multiplicity (8 sign flips × distinct permutations) / (2n)³, summing to 1.
    """
    if n < 1:
        raise ValueError("the density-of-states grid needs at least 1 point per 2π/a")
    irr = _irreducible_indices(n)
    ties = (irr[:, 0] == irr[:, 1]).astype(int) + (irr[:, 1] == irr[:, 2]).astype(int)
    perms = np.array([6, 3, 1])[ties]
    return _half_offsets(n)[irr], 8.0 * perms / (2 * n) ** 3


@lru_cache(maxsize=4)
def shell_mesh(n: int, q_min: float, q_max: float, shell_width: float = 0.01) -> ShellMesh:
    """Build the mesh for |Q| (units of 2π/a) in [q_min, q_max] with ``n`` points per 2π/a."""
    if n < 2:
        raise ValueError("mesh density n must be at least 2")
    # irreducible points: sorted absolute values on the half-integer grid, keyed by integer codes
    half = _half_offsets(n)  # index j ↔ (j + 0.5)/n
    irr = _irreducible_indices(n)
    code_of = np.full((n, n, n), -1, dtype=np.int64)
    code_of[irr[:, 0], irr[:, 1], irr[:, 2]] = np.arange(len(irr))
    q_irr = half[irr]
    edges = np.arange(np.floor(q_min / shell_width) * shell_width, q_max + shell_width, shell_width)
    n_sub = len(edges) - 1
    tensor = np.zeros((len(irr) * n_sub, 6))
    count = np.zeros(n_sub)
    m_max = int(np.ceil(q_max / 2)) + 1
    grid_1d = (np.arange(-m_max * 2 * n, m_max * 2 * n) + 0.5) / n  # Q components
    grid_1d = grid_1d[np.abs(grid_1d) <= q_max]
    pending: list[tuple[np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        flat = np.concatenate([f for f, _ in pending])
        comps = np.concatenate([c for _, c in pending])
        for m in range(6):
            tensor[:, m] += np.bincount(flat, weights=comps[:, m], minlength=tensor.shape[0])
        pending.clear()

    n_pending = 0
    for x in grid_1d:  # one plane of the grid at a time bounds the memory
        yz = grid_1d[np.abs(grid_1d) <= np.sqrt(max(q_max**2 - x * x, 0.0))]
        y, z = np.meshgrid(yz, yz, indexing="ij")
        y, z = y.ravel(), z.ravel()
        r2 = x * x + y * y + z * z
        sel = (r2 >= q_min**2) & (r2 < q_max**2)
        y, z, r = y[sel], z[sel], np.sqrt(r2[sel])
        if r.size == 0:
            continue
        xs = np.full_like(y, x)
        shell = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, n_sub - 1)
        # q = Q − 2m in the cube; the cubic operation R taking q to the wedge (sign flips, then a
        # permutation sorting |q| descending) maps Q to R Q, and |Q·e_j(q)|² = |RQ·e_j(Rq)|².
        qc = np.stack([((v + 1.0) % 2.0) - 1.0 for v in (xs, y, z)], -1)
        qv = np.stack((xs, y, z), -1) * np.where(qc < 0, -1.0, 1.0)
        idx = np.clip(np.round(np.abs(qc) * n - 0.5).astype(np.int64), 0, n - 1)
        order = np.argsort(-idx, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, 1)
        qv = np.take_along_axis(qv, order, 1)
        code = code_of[idx[:, 0], idx[:, 1], idx[:, 2]]
        qx, qy, qz = qv.T
        pending.append((code * n_sub + shell, np.stack((qx * qx, qy * qy, qz * qz, qx * qy, qx * qz, qy * qz), -1)))
        count += np.bincount(shell, minlength=n_sub)
        n_pending += r.size
        if n_pending > 4_000_000:
            flush()
            n_pending = 0
    flush()
    return ShellMesh(q=q_irr, shell_edges=edges, tensor=tensor.reshape(len(irr), n_sub, 6).astype(np.float32),
                     count=count, n=n)


def shell_to_bin_matrix(shell_edges_phys: np.ndarray, bin_edges: np.ndarray) -> np.ndarray:
    """Fraction of each sub-shell (physical |Q| edges) lying in each bin, (n_sub, n_bins)."""
    lo = np.maximum(shell_edges_phys[:-1, None], bin_edges[None, :-1])
    hi = np.minimum(shell_edges_phys[1:, None], bin_edges[None, 1:])
    width = (shell_edges_phys[1:] - shell_edges_phys[:-1])[:, None]
    return np.clip(hi - lo, 0, None) / width


#: weights that turn a packed-symmetric dot product into a trace tr(A B)
TRACE_WEIGHTS = np.array([1.0 if i == j else 2.0 for i, j in PACKED])
