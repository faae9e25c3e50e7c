"""`phonon-ml simulate`: one spectrum from given constants, or a training data set."""
from __future__ import annotations

import argparse
import logging

import numpy as np

from phonon_ml_core.physics.units import FORCE_CONSTANT_NAMES
from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset, parse_shard
from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.grid import Grid, standard_grid
from phonon_ml_core.data.validation import check_interval, check_memory
from phonon_ml_core.simulator import SimulationSettings, simulate_spectrum

log = logging.getLogger(__name__)


def parse_floats(text: str, n: int | None = None, what: str = "values") -> list[float]:
    """'a,b,c' → floats, with a clear error for a wrong count or a non-number."""
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if n is not None and len(vals) != n:
        raise ValueError(f"expected {n} {what}, got {len(vals)} in {text!r}")
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"{what} must be finite numbers, got {text!r}")
    return vals


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="simulate a powder spectrum or a training data set",
                       description="Simulate χ''(|Q|,E) on the standard ARCS Ei = 50 meV grid (or --ei for the "
                                   "kinematic grid at another Ei). Give --force-constants for one spectrum, or "
                                   "--count for a data set (resumable; --shard i/n to split the work).")
    p.add_argument("--output", "-o", required=True, help="output HDF5 file (conventions §4 layout)")
    p.add_argument("--force-constants", metavar="F1,F2,F3,F4,F5",
                   help=f"one spectrum from these constants, N/m, order {','.join(FORCE_CONSTANT_NAMES)}")
    p.add_argument("--count", type=int, help="simulate a data set of this many spectra")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data set (default 0)")
    p.add_argument("--shard", help="simulate part i of n of the data set, e.g. 0/4")
    p.add_argument("--temperature", type=float, default=None,
                   help="sample temperature, K (default 300 K for data sets; required for one spectrum)")
    p.add_argument("--temperature-range", metavar="LO,HI", help="data sets: temperature uniform in this range, K")
    p.add_argument("--range", dest="relative_range", default="0.5,1.5", metavar="LO,HI",
                   help="data sets: each constant uniform in LO–HI × reference (default 0.5,1.5)")
    p.add_argument("--constant-range", action="append", default=[], metavar="NAME=LO,HI",
                   help="data sets: sample this constant uniformly in an absolute range, N/m, instead of --range "
                        "(repeatable, e.g. --constant-range 2YY=-1,1.5; default 2YY=-1,1)")
    p.add_argument("--linewidth-range", metavar="LO,HI", help="data sets: γ uniform in this range (HWHM = γ·E)")
    p.add_argument("--lattice-parameter", type=float, help="Å (default: aluminium a(T))")
    p.add_argument("--linewidth", type=float, default=None, help="one spectrum: intrinsic linewidth γ (HWHM = γ·E)")
    p.add_argument("--quantity", choices=["chi", "S"], default="chi", help="χ'' (default) or S(|Q|,E)")
    p.add_argument("--no-normalize", action="store_true", help="skip mean normalisation")
    p.add_argument("--no-multiphonon", action="store_true", help="one-phonon scattering only")
    p.add_argument("--no-debye-waller", action="store_true", help="omit the Debye–Waller factor")
    p.add_argument("--ei", type=float, default=None, help="incident energy, meV (default: standard grid, 50)")
    p.add_argument("--chopper", default="ARCS-100-1.5-AST", help="resins chopper package (default ARCS-100-1.5-AST)")
    p.add_argument("--chopper-frequency", type=int, default=300, help="Fermi chopper frequency, Hz (default 300)")
    p.add_argument("--mesh-density", type=int, default=SimulationSettings.mesh_density,
                   help="reciprocal-space points per 2π/a (accuracy; default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="spectra per simulator call (default 8: fits the CPU cache)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--plot", help="one spectrum: also save a PNG of the spectrum")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_constant_ranges(items: list[str]) -> dict[str, tuple[float, float]]:
    """``["2YY=-1,1.5", ...]`` → {"2YY": (-1.0, 1.5)} on top of the default absolute ranges (2YY in [−1, 1])."""
    ranges = dict(SamplingConfig().absolute_ranges)
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in FORCE_CONSTANT_NAMES:
            raise ValueError(f"--constant-range {item!r}: write NAME=LO,HI with NAME one of "
                             f"{', '.join(FORCE_CONSTANT_NAMES)}, e.g. 2YY=-1,1.5")
        lo, hi = parse_floats(values, 2, f"--constant-range {name} bounds")
        if not lo < hi:
            raise ValueError(f"--constant-range {item!r}: LO must be below HI (N/m)")
        ranges[name] = (lo, hi)
    return ranges


def _grid(args) -> Grid:
    if args.ei is None or args.ei == 50.0:
        return standard_grid()
    std = standard_grid()
    return Grid.from_axes(std.q, std.energy, ei_mev=args.ei)


def _settings(args) -> SimulationSettings:
    return SimulationSettings(quantity="chi''" if args.quantity == "chi" else "S", normalize=not args.no_normalize,
                              multiphonon=not args.no_multiphonon, debye_waller=not args.no_debye_waller,
                              chopper_package=args.chopper, chopper_frequency=args.chopper_frequency,
                              mesh_density=args.mesh_density)


def run(args: argparse.Namespace) -> int:
    if (args.force_constants is None) == (args.count is None):
        raise ValueError("give either --force-constants F1,...,F5 (one spectrum) or --count N (a data set)")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    if args.count is not None:
        if args.count < 1:
            raise ValueError("--count must be at least 1")
        grid = _grid(args)
        check_memory(8.0 * args.count * grid.q.size * grid.energy.size, f"--count {args.count}",
                     "simulate fewer spectra, or split the set with --shard i/n")
        lo_hi = check_interval(parse_floats(args.relative_range, 2, "--range bounds"), "--range", low=0.0)
        if args.temperature_range:
            check_interval(parse_floats(args.temperature_range, 2, "temperatures"), "--temperature-range", "K",
                           low=0.0, low_inclusive=False)
        if args.linewidth_range:
            check_interval(parse_floats(args.linewidth_range, 2, "linewidths"), "--linewidth-range", low=0.0)
        config = SamplingConfig(relative_range=tuple(lo_hi), seed=args.seed,
                                absolute_ranges=parse_constant_ranges(args.constant_range),
                                temperature=300.0 if args.temperature is None else args.temperature,
                                temperature_range=tuple(parse_floats(args.temperature_range, 2, "temperatures"))
                                if args.temperature_range else None,
                                linewidth_range=tuple(parse_floats(args.linewidth_range, 2, "linewidths"))
                                if args.linewidth_range else None)
        if config.temperature <= 0:
            raise ValueError("--temperature must be positive (K)")
        out = generate_dataset(args.output, args.count, config, shard=parse_shard(args.shard), grid=grid,
                               settings=_settings(args), batch_size=args.batch_size, overwrite=args.overwrite,
                               progress=not args.no_progress, device=args.device)
        print(f"wrote {out}")
        return 0
    fc = parse_floats(args.force_constants, len(FORCE_CONSTANT_NAMES), "force constants")
    if args.temperature is None:
        raise ValueError("--temperature T (K) is required for one spectrum")
    out = check_output_path(args.output, args.overwrite)
    spectrum = simulate_spectrum(fc, args.temperature, grid=_grid(args), settings=_settings(args),
                                 lattice_parameter=args.lattice_parameter, linewidth=args.linewidth, device=args.device)
    spectrum.to_hdf5(out, overwrite=args.overwrite)
    if args.plot:
        from phonon_ml_core.report.plotting import plot_spectrum
        plot_spectrum(spectrum, args.plot)
    print(f"wrote {out}")
    return 0

