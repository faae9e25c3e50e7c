"""`phonon-ml dispersion`: phonon dispersion of a BvK model of any material (fcc, bcc, sc), PNG and/or CSV,
with one-sigma bands from a RESULT.json's uncertainties (``--result``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from phonon_ml_core.cli.choices import DISPERSION_PATHS
from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.specs import ALUMINIUM, Material, get_material


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    paths = "; ".join(f"{k}: {'–'.join(v)}" for k, v in DISPERSION_PATHS.items())
    p = sub.add_parser("dispersion", help="plot the phonon dispersion of force constants",
                       description=f"Dispersion of a Born–von Kármán model along a standard path ({paths}), with "
                                   "uncertainty bands from a fit or prediction result.")
    p.add_argument("--material", default=None, help="element symbol or material file (default: the result's "
                   "material, else aluminium)")
    p.add_argument("--shells", type=int, default=None, help="neighbour shells (default: the material's)")
    p.add_argument("--force-constants", default=None,
                   help="N/m in the material's order (e.g. fcc 1XX,1XY,1ZZ,2XX,2YY; bcc 1XX,1XY,2XX,2YY); default: "
                        "the result's, else the material's reference constants")
    p.add_argument("--result", default=None, help="RESULT.json of `phonon-ml fit` or `predict`: constants and "
                   "one-sigma bands (covariance or std) of one entry")
    p.add_argument("--entry", type=int, default=0, help="which entry of --result (default 0)")
    p.add_argument("--temperature", type=float, default=None,
                   help="K, sets a(T) for the distance axis (default: the material's reference temperature)")
    p.add_argument("--lattice-parameter", type=float, help="Å (default: the material's a(T))")
    p.add_argument("--output", "-o", required=True, help="PNG figure")
    p.add_argument("--csv", help="also write the energies (meV) along the path as CSV")
    p.add_argument("--overwrite", action="store_true")
    return p


def read_result_entry(path: str, index: int) -> dict:
    """One entry of a RESULT.json (fit: {"results": [...]}; predict: [...])."""
    try:
        doc = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"--result {path} is not valid JSON ({exc}): give the RESULT.json of `phonon-ml fit` or "
                         "`predict`") from None
    entries = doc["results"] if isinstance(doc, dict) and "results" in doc else doc
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: no result entries (expected the RESULT.json of `phonon-ml fit` or `predict`)")
    if not all(isinstance(e, dict) and "force_constants" in e for e in entries):
        raise ValueError(f"{path}: entries without force_constants (expected the RESULT.json of `phonon-ml fit` or "
                         "`predict`)")
    if not 0 <= index < len(entries):
        raise ValueError(f"{path} has {len(entries)} entries: give --entry between 0 and {len(entries) - 1}")
    return entries[index]


def _material(args: argparse.Namespace, entry: dict | None) -> Material:
    if args.material is not None:
        material = get_material(args.material, n_shells=args.shells)
    elif entry is not None and entry.get("material_spec"):
        material = Material.from_dict(entry["material_spec"])
    else:
        material = ALUMINIUM if args.shells is None else ALUMINIUM.with_shells(args.shells)
    if entry is not None and entry.get("names") is not None and list(entry["names"]) != list(material.names):
        raise ValueError(f"{args.result} holds constants {','.join(entry['names'])} but {material.name} has "
                         f"{','.join(material.names)}: give the result's material (--material) or omit --material")
    return material


def _constants(text: str, material: Material) -> np.ndarray:
    try:
        v = [float(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise ValueError(f"--force-constants must be comma-separated numbers (N/m), got {text!r}") from None
    return material.check_force_constants(v)


#: File types of the dispersion figure.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.fitting.frequencies import dispersion
    from phonon_ml_core.physics.units import MEV_PER_THZ

    check_output_path(args.output, args.overwrite)
    if Path(args.output).suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"--output {args.output}: the dispersion is a figure; give a file name ending in "
                         f"{', '.join(FIGURE_SUFFIXES)} (and --csv FILE.csv for the numbers)")
    if args.csv:
        check_output_path(args.csv, args.overwrite)
    entry = None if args.result is None else read_result_entry(args.result, args.entry)
    material = _material(args, entry)
    cov = std = None
    if args.force_constants is not None:
        fc = _constants(args.force_constants, material)
    elif entry is not None:
        fc = material.check_force_constants(entry["force_constants"])
        cov, std = entry.get("covariance"), entry.get("std")
        if cov is not None:
            cov = np.array([[np.nan if v is None else v for v in row] for row in cov], dtype=float)
    else:
        fc = np.array(material.reference_constants)
    a = args.lattice_parameter
    if a is None and args.temperature is not None:
        a = float(material.lattice_parameter_at(args.temperature))
    model = material.bvk_model(fc, lattice_parameter=a)
    if not model.is_stable():
        print("warning: these force constants are dynamically unstable (imaginary frequencies plotted as negative)")
    d = dispersion(material, fc, std=std, covariance=cov, lattice_parameter=a)
    _plot(d, material, fc, args.output)
    if args.csv:
        cols = [d["distance"], d["energy_mev"]]
        head = "distance_1/A,E1_meV,E2_meV,E3_meV"
        if d["std_thz"] is not None:
            cols.append(d["std_thz"] * MEV_PER_THZ)
            head += ",E1_std_meV,E2_std_meV,E3_std_meV"
        with atomic_path(args.csv) as tmp:
            np.savetxt(tmp, np.column_stack(cols), delimiter=",",
                       header="ticks (name@distance_1/A): " + " ".join(f"{n}@{t:.4f}" for t, n in d["ticks"])
                       + "\n" + head)
    print(f"wrote {args.output}" + (f" and {args.csv}" if args.csv else ""))
    return 0


def _plot(d: dict, material: Material, fc: np.ndarray, path: str) -> None:
    from phonon_ml_core.physics.units import MEV_PER_THZ
    from phonon_ml_core.report.plotting import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    dist, e = d["distance"], d["energy_mev"]
    ax.plot(dist, e, color="C0")
    if d["std_thz"] is not None and np.all(np.isfinite(d["std_thz"])):
        s = d["std_thz"] * MEV_PER_THZ
        for j in range(e.shape[1]):
            ax.fill_between(dist, e[:, j] - s[:, j], e[:, j] + s[:, j], color="C0", alpha=0.25, lw=0,
                            label="±1σ" if j == 0 else None)
        ax.legend(fontsize=8)
    ax.set_xticks([t for t, _ in d["ticks"]], [n for _, n in d["ticks"]])
    for t, _ in d["ticks"]:
        ax.axvline(t, color="0.8", lw=0.8)
    ax.set_xlim(dist[0], dist[-1])
    ax.set_ylim(min(0.0, float(np.nanmin(e))), None)
    ax.set_ylabel("Energy (meV)")
    sec = ax.secondary_yaxis("right", functions=(lambda x: x / MEV_PER_THZ, lambda x: x * MEV_PER_THZ))
    sec.set_ylabel("Frequency (THz)")
    ax.set_title(f"{material.name} ({material.lattice}) BvK " +
                 ", ".join(f"{n}={v:.2f}" for n, v in zip(material.names, fc)), fontsize=8)
    save_figure(fig, path)
