"""phonopy force constants projected onto the two-shell fcc constants (SimulatePowderINS's PhonopyFile)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

def force_constants_from_phonopy(path: str | os.PathLike, tolerance: float = 0.05) -> tuple[np.ndarray, dict]:
    """Project phonopy force constants of an fcc crystal onto [1XX, 1XY, 1ZZ, 2XX, 2YY] (N/m).

    ``path`` is a phonopy yaml (``phonopy.yaml``/``phonopy_params.yaml``, with force constants inside or a
    ``FORCE_CONSTANTS``/``force_constants.hdf5`` beside it). The coupling tensors φ(l) = −Φ(0, l) of every
    first- and second-shell bond of one atom are fitted by least squares with the symmetry-adapted shell
    basis of :class:`~phonon_ml_core.physics.bvk.BvKModel` (conventions §1); further shells are ignored.

    Returns (constants, info) with info = {lattice_parameter (Å), mass (u), residual (relative RMS of the
    fit on the two shells), n_bonds}. ValueError for a non-fcc structure or a supercell missing bonds.
    """
    import phonopy

    from phonon_ml_core.physics.units import N_PER_M_TO_EV_PER_A2
    from phonon_ml_core.physics.bvk import BvKModel

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"phonopy file {p} does not exist")
    kwargs: dict[str, Any] = {"produce_fc": True, "log_level": 0, "is_nac": False}
    for name in ("FORCE_CONSTANTS", "force_constants.hdf5"):
        if (p.parent / name).is_file():
            kwargs["force_constants_filename"] = str(p.parent / name)
            break
    try:
        ph = phonopy.load(str(p), **kwargs)
    except Exception as exc:  # noqa: BLE001 - phonopy raises many types for bad files
        raise ValueError(f"{p} could not be read by phonopy ({type(exc).__name__}: {exc}); give a phonopy yaml "
                         "with force constants (phonopy --writefc / "
                         "Phonopy.save(settings={'force_constants': True}))") from exc
    fc = ph.force_constants
    if fc is None:
        raise ValueError(f"{p} holds no force constants (only displacements?): produce them with phonopy first")
    sc = ph.supercell
    lattice = np.asarray(sc.cell, dtype=float)
    spos = np.asarray(sc.scaled_positions, dtype=float)
    i0 = int(ph.primitive.p2s_map[0])
    row = fc[0] if fc.shape[0] != fc.shape[1] else fc[i0]
    d = spos - spos[i0]
    d -= np.round(d)
    r = d @ lattice
    dist = np.linalg.norm(r, axis=1)
    nn = dist[dist > 1e-6].min()
    a = nn * np.sqrt(2.0)  # fcc: nearest neighbours at a/√2
    model = BvKModel(force_constants=np.zeros(5), lattice_parameter=a, mass=float(ph.primitive.masses[0]))
    bonds = model.bond_vectors
    basis = model.bond_basis  # (L, 5, 3, 3)
    rows, rhs = [], []
    for bl, bb in zip(bonds, basis):
        j = np.where(np.linalg.norm(r - bl, axis=1) < tolerance * a)[0]
        if len(j) != 1:
            raise ValueError(f"the phonopy supercell does not hold the bond {np.round(bl / a, 3).tolist()} a exactly "
                             "once: the structure is not fcc or the supercell is too small for two shells (use ≥ 2×2×2 "
                             "conventional cells)")
        phi = -np.asarray(row[j[0]], dtype=float) / N_PER_M_TO_EV_PER_A2  # eV/Å² → N/m, φ = −Φ
        rows.append(bb.reshape(5, 9).T)
        rhs.append(phi.reshape(9))
    a_mat, b_vec = np.concatenate(rows), np.concatenate(rhs)
    coef, *_ = np.linalg.lstsq(a_mat, b_vec, rcond=None)
    res = a_mat @ coef - b_vec
    rel = float(np.sqrt((res ** 2).mean()) / max(np.sqrt((b_vec ** 2).mean()), 1e-30))
    info = {"lattice_parameter": float(a), "mass": float(ph.primitive.masses[0]), "residual": rel,
            "n_bonds": int(len(bonds)), "source": str(p)}
    return coef, info
