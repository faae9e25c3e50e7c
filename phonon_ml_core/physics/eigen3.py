"""Closed-form eigenvalues of batched real symmetric 3×3 matrices and mode projections (torch).

Elementwise formulas (trigonometric solution of the characteristic cubic) are much faster than
``torch.linalg.eigh`` on millions of tiny matrices and are differentiable.
"""
from __future__ import annotations

import math

import torch

#: Component order of a packed symmetric matrix: xx, yy, zz, xy, xz, yz.
PACKED = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def eigvalsh3(a: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (ascending) of symmetric matrices packed as (..., 6) → (..., 3)."""
    a11, a22, a33, a12, a13, a23 = a.unbind(-1)
    q = (a11 + a22 + a33) / 3
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2 * p1
    tiny = torch.finfo(a.dtype).tiny ** 0.5
    p = torch.sqrt(p2 / 6 + tiny)
    det = (b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13))
    r = det / (2 * p * p * p)
    eps = 1e-6 if a.dtype == torch.float32 else 1e-12
    phi = torch.acos(r.clamp(-1 + eps, 1 - eps)) / 3
    hi = q + 2 * p * torch.cos(phi)
    lo = q + 2 * p * torch.cos(phi + 2 * math.pi / 3)
    mid = 3 * q - hi - lo
    return torch.stack((lo, mid, hi), -1)


def all_eigenvalues_above(a: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """Whether every eigenvalue of the packed symmetric matrices (..., 6) exceeds ``tol`` → bool (...).

    Sylvester's criterion on a − tol·I (its leading principal minors all positive): exact, and several times
    cheaper than :func:`eigvalsh3` when only the sign of the smallest eigenvalue is wanted.
    """
    a11, a22, a33, a12, a13, a23 = a.unbind(-1)
    b11, b22, b33 = a11 - tol, a22 - tol, a33 - tol
    m2 = b11 * b22 - a12 * a12
    det = b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13) + a13 * (a12 * a23 - b22 * a13)
    return (b11 > 0) & (m2 > 0) & (det > 0)


def matvec3(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Packed symmetric (..., 6) times vectors (..., 3)."""
    a11, a22, a33, a12, a13, a23 = a.unbind(-1)
    x, y, z = v.unbind(-1)
    return torch.stack((a11 * x + a12 * y + a13 * z, a12 * x + a22 * y + a23 * z, a13 * x + a23 * y + a33 * z), -1)


def mode_projections(a: torch.Tensor, lam: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """|v·e_j|² for the eigenvectors e_j of ``a`` (packed (..., 6)) with eigenvalues ``lam`` (..., 3).

    Uses the spectral projectors P_j = Π_{k≠j} (A − λ_k)/(λ_j − λ_k), so vᵀP_j v needs only
    vᵀv, vᵀAv and |Av|². Near-degenerate pairs are regularised; their sum stays exact.
    """
    av = matvec3(a, v)
    s0 = (v * v).sum(-1, keepdim=True)
    s1 = (v * av).sum(-1, keepdim=True)
    s2 = (av * av).sum(-1, keepdim=True)
    l0, l1, l2 = lam.unbind(-1)
    scale = lam.abs().amax(-1, keepdim=True).squeeze(-1)
    floor = (1e-5 if a.dtype == torch.float32 else 1e-10) * scale + torch.finfo(a.dtype).tiny

    def _safe(d: torch.Tensor) -> torch.Tensor:
        return torch.where(d.abs() < floor, torch.where(d < 0, -floor, floor), d)

    others = ((l1, l2), (l0, l2), (l0, l1))
    out = []
    for lj, (la, lb) in zip((l0, l1, l2), others):
        num = s2.squeeze(-1) - (la + lb) * s1.squeeze(-1) + la * lb * s0.squeeze(-1)
        out.append(num / (_safe(lj - la) * _safe(lj - lb)))
    w = torch.stack(out, -1).clamp_min(0)
    # renormalise so that Σ_j |v·e_j|² = |v|² exactly
    return w * (s0 / w.sum(-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny))
