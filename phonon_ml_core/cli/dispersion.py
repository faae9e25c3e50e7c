"""`phonon-ml dispersion`: phonon dispersion of a BvK model along Γ–X–W–L–Γ–K (PNG and/or CSV)."""
from __future__ import annotations

import argparse

import numpy as np

from phonon_ml_core.physics.units import AL_REFERENCE_FC, FORCE_CONSTANT_NAMES
from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.physics.bvk import BvKModel
from phonon_ml_core.cli.simulate import parse_floats


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("dispersion", help="plot the phonon dispersion of force constants",
                       description="Dispersion of the fcc two-shell BvK model along Γ–X–W–L–Γ–K.")
    p.add_argument("--force-constants", default=",".join(str(x) for x in AL_REFERENCE_FC),
                   help=f"N/m, order {','.join(FORCE_CONSTANT_NAMES)} (default: aluminium reference)")
    p.add_argument("--temperature", type=float, default=50.0, help="K, sets a(T) for aluminium (default 50)")
    p.add_argument("--lattice-parameter", type=float, help="Å (default: aluminium a(T))")
    p.add_argument("--output", "-o", required=True, help="PNG figure")
    p.add_argument("--csv", help="also write the energies (meV) along the path as CSV")
    p.add_argument("--overwrite", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    fc = parse_floats(args.force_constants, len(FORCE_CONSTANT_NAMES), "force constants")
    model = BvKModel.aluminium(fc, temperature=args.temperature, lattice_parameter=args.lattice_parameter)
    check_output_path(args.output, args.overwrite)
    if not model.is_stable():
        print("warning: these force constants are dynamically unstable (imaginary frequencies plotted as negative)")
    model.plot_dispersion(args.output)
    if args.csv:
        check_output_path(args.csv, args.overwrite)
        dist, e, ticks = model.dispersion()
        with atomic_path(args.csv) as tmp:
            np.savetxt(tmp, np.column_stack([dist, e]), delimiter=",",
                       header="distance_1/A,E1_meV,E2_meV,E3_meV; ticks " + " ".join(f"{n}@{t:.4f}" for t, n in ticks))
    print(f"wrote {args.output}")
    return 0
