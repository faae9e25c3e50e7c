"""Derive the built-in materials (``specs/materials/*.json``) from published Born–von Kármán fits.

Run ``python -m phonon_ml_core.specs.derive_builtin [--literature PATH] [--check]``. For each metal:

1. take one fit from ``bvk_literature.json`` (../shared/data/materials), fixing the typos its README lists;
2. map every literature shell onto the symmetry-adapted constants of ``physics.symmetry.cubic_shells``
   (least squares on the given tensor components; components the site symmetry forbids are reported and dropped);
3. truncate to two shells; compare zone-boundary frequencies with the full many-shell model
   (fcc: X, L, W, K; bcc: H, N, P) and check dynamical stability (``physics.bvk.stability_check``);
4. keep the truncation when it is stable and every zone-boundary branch is within 5 % of the full model,
   else refit two shells to the full model's dispersion (least squares on frequencies over a Brillouin-zone
   sample plus the zone-boundary points, ``scipy.optimize.least_squares``);
5. mass and neutron scattering from ``periodictable``; a(T) from a room-temperature lattice parameter and a
   linear thermal-expansion coefficient (both cited); sampling ranges and fit bounds by the §7 rules.

Aluminium is not derived: ``material.ALUMINIUM`` (the study's preset) is written as it is, and only compared.
``--check`` recomputes everything and fails when a stored file differs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from phonon_ml_core.physics.bvk import BvKModel, bz_sample, stability_check
from phonon_ml_core.physics.symmetry import cubic_shells
from phonon_ml_core.physics.units import FC_TO_MEV2, MEV_PER_THZ
from phonon_ml_core.specs.material import (
    ALUMINIUM,
    LatticeParameter,
    Material,
    fit_bounds_rule,
    sampling_rule,
)

OUT_DIR = Path(__file__).resolve().parent / "materials"
DEFAULT_LITERATURE = Path(__file__).resolve().parents[3] / "shared" / "data" / "materials" / "bvk_literature.json"
ZB_TOLERANCE = 0.05

#: Which literature fit each built-in uses: the one measured closest to room temperature, except Ag, where the
#: 293 K fit (Drexel) is itself unstable (its elastic constants have C12 > C11), so the 296 K fit is used.
CHOICE = {"Cu": "Cu_296K", "Ni": "Ni_296K", "Ag": "Ag_296K", "Au": "Au_295K", "Pb": "Pb_80K", "Pd": "Pd_296K",
          "Pt": "Pt_90K", "Fe": "Fe_295K", "Nb": "Nb_296K", "Mo": "Mo_296K", "W": "W_298K", "Ta": "Ta_296K",
          "Cr": "Cr_300K", "V": "V_296K", "Na": "Na_90K", "K": "K_9K"}
#: Typos listed in the literature README: (entry, shell, component) -> corrected value.
FIXES = {("Pb_80K", "211", "yy"): -0.2996,   # compilation's −2.996 (misplaced decimal point) makes Pb unstable
         ("Ag_296K", "110", "zz"): -1.75}    # compilation's +1.75 is inconsistent with Ag 293 K
#: Extra caveats for particular entries (README "known problems").
CAVEATS = {"Au_295K": "the compilation's citation for Au looks like the aluminium paper: treat the source as "
                      "unverified",
           "Fe_295K": "the compilation's lattice parameter (3.61 Å, fcc γ-Fe) is ignored",
           "Ta_296K": "the compilation's lattice parameter is ignored"}

_CRC_A = ("room-temperature lattice parameter: CRC Handbook of Chemistry and Physics, 'Crystal structures and "
          "lattice parameters of allotropes of the elements'")
_CRC_ALPHA = "linear expansion coefficient at 25 °C: CRC Handbook of Chemistry and Physics, 'Thermal expansion'"
#: Room-temperature (≈ 293 K) lattice parameter (Å) and linear thermal-expansion coefficient (1e-6/K).
LATTICE = {"Cu": (3.6149, 16.5), "Ni": (3.5240, 13.4), "Ag": (4.0857, 18.9), "Au": (4.0782, 14.2),
           "Pb": (4.9502, 28.9), "Pd": (3.8907, 11.8), "Pt": (3.9242, 8.8), "Fe": (2.8665, 11.8),
           "Nb": (3.3004, 7.3), "Mo": (3.1470, 4.8), "W": (3.1652, 4.5), "Ta": (3.3013, 6.3),
           "Cr": (2.8846, 4.9), "V": (3.0240, 8.4), "Na": (4.2906, 71.0), "K": (5.3280, 83.3)}

#: Zone-boundary points in units of 2π/a.
ZB_POINTS = {"fcc": {"X": (0.0, 1.0, 0.0), "L": (0.5, 0.5, 0.5), "W": (0.5, 1.0, 0.0), "K": (0.75, 0.75, 0.0)},
             "bcc": {"H": (1.0, 0.0, 0.0), "N": (0.5, 0.5, 0.0), "P": (0.5, 0.5, 0.5)},
             "sc": {"X": (0.5, 0.0, 0.0), "M": (0.5, 0.5, 0.0), "R": (0.5, 0.5, 0.5)}}
_COMPONENT = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}


def literature_constants(entry: dict) -> tuple[dict[str, float], int, list[str]]:
    """Map a literature fit onto the named constants of cubic_shells. Returns (name → N/m, n_shells, warnings)."""
    lattice = entry["lattice"]
    labels = entry["force_constants_N_per_m"]
    vecs = {lab: np.array([int(c) for c in lab], dtype=float) / 2.0 for lab in labels}
    r2 = sorted({round(float(v @ v), 6) for v in vecs.values()})
    n_shells = 1
    while True:  # enough shells to reach the farthest labelled neighbour
        shells = cubic_shells(lattice, n_shells)
        if round(shells[-1].distance ** 2, 6) >= r2[-1]:
            break
        n_shells += 1
    values: dict[str, float] = {}
    warnings: list[str] = []
    for lab, comps in labels.items():
        r0 = vecs[lab]
        shell = next((s for s in shells if np.any(np.all(np.isclose(s.vectors, r0), axis=1))), None)
        if shell is None:
            raise ValueError(f"{lab}: not a lattice vector of {lattice}")
        li = int(np.where(np.all(np.isclose(shell.vectors, r0), axis=1))[0][0])
        basis = shell.basis[li]  # (n_c, 3, 3)
        rows, rhs = [], []
        for comp, val in comps.items():
            i, j = _COMPONENT[comp]
            rows.append(basis[:, i, j])
            rhs.append(val)
        coef, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
        resid = np.array(rows) @ coef - np.array(rhs)
        if np.abs(resid).max() > 1e-9:
            bad = [f"{c}={v:g}" for (c, v), r in zip(comps.items(), resid) if abs(r) > 1e-9]
            warnings.append(f"shell {lab}: components {', '.join(bad)} are not allowed by the site symmetry of "
                            f"(a/2)({','.join(lab)}) and were dropped")
        for name, c in zip(shell.names, coef):
            values[name] = float(np.round(c, 10))
    names = [n for s in shells for n in s.names]
    return {n: values.get(n, 0.0) for n in names}, n_shells, warnings


def frequencies_thz(model: BvKModel, q_frac: np.ndarray) -> np.ndarray:
    """Branch frequencies (THz, ascending; negative = imaginary) at q in units of 2π/a."""
    q = np.asarray(q_frac, dtype=float) * (2 * np.pi / model.lattice_parameter)
    w2 = np.linalg.eigvalsh(model.dynamical_matrix(q)) * (FC_TO_MEV2 / model.mass)
    return np.sign(w2) * np.sqrt(np.abs(w2)) / MEV_PER_THZ


def zone_boundary_error(model: BvKModel, full: BvKModel) -> tuple[float, dict[str, list[float]]]:
    """Largest relative frequency error over the zone-boundary points and branches, and the full model's THz."""
    pts = ZB_POINTS[model.lattice]
    q = np.array(list(pts.values()))
    w, wf = frequencies_thz(model, q), frequencies_thz(full, q)
    err = float(np.max(np.abs(w - wf) / np.abs(wf)))
    return err, {k: [round(float(x), 3) for x in row] for k, row in zip(pts, wf)}


def refit_two_shells(start: np.ndarray, full: BvKModel, zb_weight: float) -> np.ndarray:
    """Least-squares two-shell constants reproducing the full model's frequencies.

    Residuals: relative frequency errors over a 6³ Brillouin-zone sample (floor 10 % of the top frequency, so
    acoustic branches near Γ do not dominate) and, weighted by ``zb_weight``, at the zone-boundary points; a weak
    pull (REGULARISATION) towards the truncated constants, which the dispersion does not pin down alone.
    """
    from scipy.optimize import least_squares

    a = full.lattice_parameter
    q = bz_sample(full.lattice, a, 6) / (2 * np.pi / a)
    zb = np.array(list(ZB_POINTS[full.lattice].values()))
    tq, tz = frequencies_thz(full, q), frequencies_thz(full, zb)
    floor = 0.1 * np.abs(tq).max()
    size = np.abs(start).max()
    trial = BvKModel(force_constants=start, lattice_parameter=a, mass=full.mass, lattice=full.lattice, n_shells=2)

    def resid(fc: np.ndarray) -> np.ndarray:
        trial.force_constants = np.asarray(fc, dtype=float)
        r1 = (frequencies_thz(trial, q) - tq) / np.maximum(np.abs(tq), floor)
        r2 = (frequencies_thz(trial, zb) - tz) / np.abs(tz) * zb_weight
        return np.concatenate([r1.ravel() / np.sqrt(r1.size), r2.ravel() / np.sqrt(r2.size),
                               REGULARISATION * (np.asarray(fc) - start) / size])

    res = least_squares(resid, np.asarray(start, dtype=float), x_scale="jac")
    return np.round(res.x, 3)


#: Zone-boundary weights tried in turn; the first that gives a stable two-shell model is kept.
ZB_WEIGHTS = (3.0, 2.0, 1.0)
#: Weight of the pull towards the truncated constants (per largest constant).
REGULARISATION = 0.1


def derive(key: str, entry: dict) -> tuple[Material, dict]:
    """One built-in material from one literature entry, and a summary of what was done."""
    import periodictable

    el = entry["element"]
    lattice = entry["lattice"]
    lit, n_lit, warnings = literature_constants(entry)
    names2 = [n for s in cubic_shells(lattice, 2) for n in s.names]
    a293, alpha = LATTICE[el]
    lp = LatticeParameter(kind="expansion", a_ref=a293, t_ref_k=293.0, alpha_per_k=alpha * 1e-6,
                          source=f"{_CRC_A} ({a293} Å); {_CRC_ALPHA} ({alpha}e-6/K); linear in T, so below ~100 K "
                                 "it overestimates the contraction")
    t_ref = float(entry["temperature_K"])
    a = float(lp.at(t_ref))
    element = getattr(periodictable, el)
    mass = float(element.mass)
    full = BvKModel(force_constants=np.array(list(lit.values())), lattice_parameter=a, mass=mass, lattice=lattice,
                    n_shells=n_lit)
    trunc = np.array([lit[n] for n in names2])
    m2 = BvKModel(force_constants=trunc, lattice_parameter=a, mass=mass, lattice=lattice, n_shells=2)
    full_stable = bool(stability_check(full.force_constants[None], full)[0])
    stable = bool(stability_check(trunc[None], m2)[0])
    err, zb = zone_boundary_error(m2, full)
    fixes = [f"{sh} {c} = {v}" for (k, sh, c), v in FIXES.items() if k == key]
    summary = {"element": el, "entry": key, "n_shells_literature": n_lit, "full_model_stable": full_stable,
               "truncated": trunc.tolist(), "truncated_stable": stable, "truncated_zb_error": err,
               "zb_full_thz": zb, "warnings": warnings, "fixes": fixes}
    if stable and err <= ZB_TOLERANCE:
        ref, action = trunc, "truncated"
        what = (f"truncated the {n_lit}-shell fit to two shells: stable, zone-boundary frequencies within "
                f"{100 * err:.1f} % of the full model")
    else:
        for weight in ZB_WEIGHTS:
            ref = refit_two_shells(trunc, full, weight)
            if stability_check(ref[None], m2)[0]:
                break
        else:
            raise RuntimeError(f"{el}: no stable two-shell refit; inspect the entry")
        m2.force_constants = ref
        err2, _ = zone_boundary_error(m2, full)
        action = "refitted"
        why = "unstable" if not stable else f"zone-boundary error {100 * err:.1f} %"
        what = (f"two-shell truncation of the {n_lit}-shell fit was poor ({why}; truncated constants "
                f"{', '.join(f'{v:g}' for v in trunc)}); refitted two shells to the full model's dispersion "
                f"(least squares on relative frequency errors over a 6³ BZ sample + zone boundary, "
                f"zone-boundary weight {weight:g}): zone-boundary frequencies "
                f"within {100 * err2:.1f} % of the full model")
        summary.update(refitted=ref.tolist(), refitted_zb_error=err2)
    summary["action"] = action
    notes = "; ".join([what] + [f"fixed typo {f} (README)" for f in fixes] + warnings
                      + ([CAVEATS[key]] if key in CAVEATS else [])
                      + [f"full-model zone-boundary frequencies (THz): {zb}"])
    ref_t = tuple(float(x) for x in ref)
    neutron = element.neutron
    mat = Material(name=el, element=el, lattice=lattice, n_shells=2, mass_u=mass, b_coh_fm=float(neutron.b_c),
                   sigma_coh_barn=float(neutron.coherent), sigma_inc_barn=float(neutron.incoherent),
                   lattice_parameter=lp, reference_constants=ref_t,
                   reference_source=f"{entry['reference']} ({entry['temperature_K']} K, {n_lit} shells; "
                                    "Landolt–Börnstein compilation)",
                   sampling_ranges=sampling_rule(ref_t), fit_bounds=fit_bounds_rule(ref_t),
                   reference_temperature_k=t_ref, notes=notes,
                   extended_reference=tuple((n, v) for n, v in lit.items() if n not in names2))
    return mat, summary


def aluminium_summary(lit_data: dict) -> dict:
    """How the aluminium preset compares with Cowley's full 80 K model (no derivation: the preset is kept)."""
    lit, n_lit, _ = literature_constants(lit_data["Al_80K"])
    a = ALUMINIUM.lattice_parameter_at(80.0)
    full = BvKModel(force_constants=np.array(list(lit.values())), lattice_parameter=a, mass=ALUMINIUM.mass_u,
                    lattice="fcc", n_shells=n_lit)
    err, zb = zone_boundary_error(ALUMINIUM.bvk_model(), full)
    return {"element": "Al", "entry": "Al_80K", "action": "preset kept", "preset_zb_error": err, "zb_full_thz": zb,
            "preset_stable": ALUMINIUM.bvk_model().is_stable()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--literature", type=Path, default=DEFAULT_LITERATURE, help="bvk_literature.json")
    parser.add_argument("--check", action="store_true", help="compare with the stored files instead of writing")
    args = parser.parse_args(argv)
    data = json.loads(args.literature.read_text(encoding="utf-8"))
    for (key, shell, comp), value in FIXES.items():
        data[key]["force_constants_N_per_m"][shell][comp] = value
    materials = {"Al": ALUMINIUM}
    summaries = [aluminium_summary(data)]
    for el, key in CHOICE.items():
        mat, summary = derive(key, data[key])
        materials[el] = mat
        summaries.append(summary)
    status = 0
    for el, mat in materials.items():
        path = OUT_DIR / f"{el}.json"
        if args.check:
            stored = Material.from_json_file(path) if path.exists() else None
            if stored is None or not stored.same_as(mat):
                print(f"{path.name}: differs from a fresh derivation", file=sys.stderr)
                status = 1
        else:
            OUT_DIR.mkdir(exist_ok=True)
            mat.to_json_file(path)
    for s in summaries:
        print(json.dumps(s))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
