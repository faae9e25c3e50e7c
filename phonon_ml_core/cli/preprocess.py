"""``phonon-ml preprocess``: a measured file (Mantid .nxs, .nxspe or phonon-ml .h5) → a model-ready spectrum."""
from __future__ import annotations

import argparse

from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.rebin import HALF_AREA_COVERAGE
from phonon_ml_core.preprocess.background import DEFAULT_BACKGROUND, ESTIMATORS
from phonon_ml_core.specs import ALUMINIUM, get_material


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "preprocess", help="measured S(|Q|,E) → background-subtracted, mean-normalised chi'' on the default grid",
        description="Read a Mantid processed NeXus S(|Q|,E) file, an NXSPE file or a phonon-ml HDF5 spectrum, "
                    "rebin it to the default grid for its Ei (the standard grid for ARCS at 50 meV) or a bundle's "
                    "grid, subtract an energy-dependent background, convert S to chi'' and mean-normalise it "
                    "(docs/preprocess.md). Ei, temperature and instrument come from the file; flags override them. "
                    "The output records the material and the experiment.")
    p.add_argument("--input", required=True, help="Mantid .nxs (SofQW output), .nxspe or phonon-ml .h5 file")
    p.add_argument("--output", required=True, help="output spectrum, phonon-ml HDF5 (.h5)")
    p.add_argument("--material", default=None,
                   help="the sample: element symbol of a built-in material or a material file (default: the input's, "
                        "else Al)")
    p.add_argument("--instrument", default=None,
                   help="instrument (default: the one named in the file; see `phonon-ml materials`)")
    p.add_argument("--ei", type=float, default=None,
                   help="incident energy in meV (overrides the file's; required when the file records none)")
    p.add_argument("--model", default=None, help="a model bundle: preprocess onto its grid instead of the default one")
    p.add_argument("--temperature", type=float, default=None,
                   help="sample temperature in K (overrides the file's SampleTemp log)")
    p.add_argument("--background", default=DEFAULT_BACKGROUND, choices=sorted(ESTIMATORS),
                   help=f"energy-dependent background estimator (default {DEFAULT_BACKGROUND})")
    p.add_argument("--min-coverage", type=float, default=HALF_AREA_COVERAGE,
                   help="keep a target bin when the data cover at least this fraction of its area (default "
                        f"{HALF_AREA_COVERAGE}: the half-area rule, as Mantid's fractional-area rebinning; any "
                        "coverage on the standard grid, whose mask is the measured one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.preprocess.measurement import read_measured
    from phonon_ml_core.preprocess.pipeline import preprocess_with_report, with_specs

    check_output_path(args.output, args.overwrite)
    if args.temperature is not None and not args.temperature > 0:
        raise ValueError(f"--temperature must be a positive number of kelvin, got {args.temperature}")
    material = None if args.material is None else get_material(args.material)
    grid = None
    if args.model:
        from phonon_ml_core.learn.ensemble import load_model

        grid = load_model(args.model).grid
    spectrum = read_measured(args.input, grid=grid, ei_mev=args.ei, instrument=args.instrument,
                             min_coverage=args.min_coverage)
    out, report = preprocess_with_report(spectrum, grid, temperature=args.temperature, background=args.background,
                                         min_coverage=args.min_coverage, material=material,
                                         instrument=args.instrument)
    if out.material is None or out.experiment is None:   # record the defaults (aluminium when nothing says)
        out = with_specs(out, material or out.material or ALUMINIUM, args.instrument)
    out.to_hdf5(args.output, overwrite=args.overwrite)
    print(f"{args.input} → {args.output}: {report.summary()}")
    print(f"  material: {out.material.describe()}")
    print(f"  experiment: {out.experiment.describe()}")
    return 0
