"""``phonon-ml preprocess``: a measured file (Mantid .nxs, .nxspe or phonon-ml .h5) → standard spectrum."""
from __future__ import annotations

import argparse

from phonon_ml_core.preprocess.background import DEFAULT_BACKGROUND, ESTIMATORS
from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.grid import standard_grid
from phonon_ml_core.preprocess.pipeline import preprocess_with_report
from phonon_ml_core.readers import read_spectrum, sniff_format


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "preprocess", help="measured S(|Q|,E) → background-subtracted, mean-normalised chi'' on the standard grid",
        description="Read a Mantid processed NeXus S(|Q|,E) file, an NXSPE file or a phonon-ml HDF5 spectrum, "
                    "rebin it to the standard grid, subtract an energy-dependent background, convert S to chi'' "
                    "and mean-normalise it (docs/preprocess.md).")
    p.add_argument("--input", required=True, help="Mantid .nxs (SofQW output), .nxspe or phonon-ml .h5 file")
    p.add_argument("--output", required=True, help="output spectrum, phonon-ml HDF5 (.h5)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sample temperature in K (overrides the file's SampleTemp log)")
    p.add_argument("--background", default=DEFAULT_BACKGROUND, choices=sorted(ESTIMATORS),
                   help=f"energy-dependent background estimator (default {DEFAULT_BACKGROUND})")
    p.add_argument("--min-coverage", type=float, default=0.0,
                   help="mask output bins covered by less than this fraction of their area "
                        "(default 0: any coverage, as Mantid's NormalisedPolygon)")
    p.add_argument("--ei", type=float, default=None, help="incident energy in meV for NXSPE files without one")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def run(args: argparse.Namespace) -> int:
    check_output_path(args.output, args.overwrite)
    if args.temperature is not None and not args.temperature > 0:
        raise ValueError(f"--temperature must be a positive number of kelvin, got {args.temperature}")
    grid = standard_grid()
    options = {}
    if sniff_format(args.input) == "nxspe":
        options = {"q_edges": grid.q_edges, "ei_mev": args.ei}
    spectrum = read_spectrum(args.input, **options)
    out, report = preprocess_with_report(spectrum, grid, temperature=args.temperature, background=args.background,
                                         min_coverage=args.min_coverage)
    out.to_hdf5(args.output, overwrite=args.overwrite)
    print(f"{args.input} → {args.output}: {report.summary()}")
    return 0
