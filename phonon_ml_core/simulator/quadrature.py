"""Deterministic powder-average quadrature for cubic crystals.

S(Q,E) of a cubic crystal is invariant under the 48 cubic operations applied to Q, so the powder
average over all directions equals the average over one octant (six copies of the irreducible
1/48 wedge). Points are a scrambled Sobol sequence (fixed seed: deterministic) in
(|Q| across the bin, cos θ, φ) mapped area-preservingly onto the octant; each |Q| bin uses its own
consecutive block so that errors do not repeat from bin to bin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc


@dataclass(frozen=True)
class PowderQuadrature:
    """Sample points for averaging over |Q| bins and directions.

    Attributes:
        q_vectors: Cartesian Q (1/Å), (n_bins · n_per_bin, 3).
        bin_index: index into ``bins`` of each point, (n_points,).
        bins: indices of the grid's |Q| columns that are sampled, (n_bins,).
        n_per_bin: points per bin (equal weights 1/n_per_bin).
    """

    q_vectors: np.ndarray
    bin_index: np.ndarray
    bins: np.ndarray
    n_per_bin: int

    @property
    def q_norm(self) -> np.ndarray:
        return np.linalg.norm(self.q_vectors, axis=1)


def powder_quadrature(q_edges: np.ndarray, bins: np.ndarray, n_per_bin: int, seed: int = 20240521) -> PowderQuadrature:
    """Points uniform in |Q| within each selected bin and uniform over directions (octant)."""
    if n_per_bin < 1:
        raise ValueError("n_per_bin must be at least 1")
    bins = np.asarray(bins, dtype=int)
    sobol = qmc.Sobol(d=3, scramble=True, seed=seed)
    m = int(np.ceil(np.log2(max(n_per_bin * len(bins), 2))))
    u = sobol.random_base2(m)[: n_per_bin * len(bins)].reshape(len(bins), n_per_bin, 3)
    lo = np.maximum(q_edges[bins], 0.0)
    hi = q_edges[bins + 1]
    qn = lo[:, None] + u[..., 0] * (hi - lo)[:, None]
    qn = np.maximum(qn, 1e-4)
    cos_t = u[..., 1]
    sin_t = np.sqrt(1 - cos_t**2)
    phi = u[..., 2] * (np.pi / 2)
    dirs = np.stack((sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t), -1)
    qv = (qn[..., None] * dirs).reshape(-1, 3)
    return PowderQuadrature(q_vectors=qv, bin_index=np.repeat(np.arange(len(bins)), n_per_bin), bins=bins,
                            n_per_bin=n_per_bin)
