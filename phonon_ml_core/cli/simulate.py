"""`phonon-ml simulate`: one spectrum from given constants, or a training data set, for any material and experiment.

Without ``--material``/``--instrument`` it is the aluminium command of conventions §6 (standard ARCS experiment;
``--ei`` re-masks the standard axes for another Ei, as before); with them, the material's constants and the
experiment's default grid for its Ei (``specs.default_grid``). Every output records its Material and Experiment.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from typing import TYPE_CHECKING

from phonon_ml_core.cli import choices
from phonon_ml_core.cli.parsing import parse_floats
from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.validation import check_interval, check_memory
from phonon_ml_core.specs import ALUMINIUM, get_material

if TYPE_CHECKING:  # the heavy modules (torch, resins) load in run(), so --help answers without them
    from phonon_ml_core.simulator import SimulationSettings
    from phonon_ml_core.specs import Experiment, Material

__all__ = ["experiment_from_args", "material_from_args", "parse_constant_ranges", "parse_floats", "register", "run"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("simulate", help="simulate a powder spectrum or a training data set",
                       description="Simulate χ''(|Q|,E) of a material (default Al) on an experiment (default the "
                                   "standard ARCS Ei = 50 meV grid; with --instrument/--ei the default grid for that "
                                   "Ei). Give --force-constants for one spectrum, or --count for a data set "
                                   "(resumable; --shard i/n to split the work). See `phonon-ml materials`.")
    p.add_argument("--output", "-o", required=True, help="output HDF5 file (conventions §4 layout)")
    p.add_argument("--material", default=None,
                   help="built-in material (element symbol, e.g. Fe) or a material file (default Al)")
    p.add_argument("--shells", type=int, default=None, help="number of neighbour shells (default: the material's)")
    p.add_argument("--instrument", default=None,
                   help=f"instrument (default {choices.STANDARD_INSTRUMENT}); sets the default grid for --ei")
    p.add_argument("--force-constants", metavar="F1,...,Fn",
                   help="one spectrum from these constants, N/m, in the material's order (Al: "
                        f"{','.join(ALUMINIUM.names)}; see `phonon-ml materials`)")
    p.add_argument("--count", type=int, help="simulate a data set of this many spectra")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data set (default 0)")
    p.add_argument("--shard", help="simulate part i of n of the data set, e.g. 0/4")
    p.add_argument("--temperature", type=float, default=None,
                   help="sample temperature, K (default 300 K for data sets; required for one spectrum)")
    p.add_argument("--temperature-range", metavar="LO,HI", help="data sets: temperature uniform in this range, K")
    p.add_argument("--range", dest="relative_range", default=None, metavar="LO,HI",
                   help="data sets: each constant uniform in LO–HI × reference (default: the material's sampling "
                        "ranges, 0.5–1.5 × reference with small constants in an absolute range, conventions §7)")
    p.add_argument("--constant-range", action="append", default=[], metavar="NAME=LO,HI",
                   help="data sets: sample this constant uniformly in an absolute range, N/m, instead of --range "
                        "(repeatable, e.g. --constant-range 2YY=-1,1.5; default: the material's sampling ranges)")
    p.add_argument("--linewidth-range", metavar="LO,HI", help="data sets: γ uniform in this range (HWHM = γ·E)")
    p.add_argument("--lattice-parameter", type=float, help="Å (default: the material's a(T))")
    p.add_argument("--linewidth", type=float, default=None, help="one spectrum: intrinsic linewidth γ (HWHM = γ·E)")
    p.add_argument("--quantity", choices=["chi", "S"], default="chi", help="χ'' (default) or S(|Q|,E)")
    p.add_argument("--no-normalize", action="store_true", help="skip mean normalisation")
    p.add_argument("--no-multiphonon", action="store_true", help="one-phonon scattering only")
    p.add_argument("--no-debye-waller", action="store_true", help="omit the Debye–Waller factor")
    p.add_argument("--ei", type=float, default=None,
                   help=f"incident energy, meV (default: the instrument's; {choices.STANDARD_EI_MEV:g} on "
                        f"{choices.STANDARD_INSTRUMENT})")
    p.add_argument("--chopper", default=None,
                   help=f"resins chopper package (default: the instrument's; {choices.STANDARD_CHOPPER_PACKAGE} "
                        f"on {choices.STANDARD_INSTRUMENT})")
    p.add_argument("--chopper-frequency", type=int, default=None,
                   help=f"chopper frequency, Hz (default: the instrument's; {choices.STANDARD_CHOPPER_FREQUENCY} "
                        f"on {choices.STANDARD_INSTRUMENT})")
    p.add_argument("--mesh-density", type=int, default=choices.MESH_DENSITY,
                   help="reciprocal-space points per 2π/a (accuracy; default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="spectra per simulator call (default 8: fits the CPU cache)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--executor", choices=("serial", "dask"), default="serial",
                   help="data sets: simulate in this process (default) or fan the work out to a Dask cluster "
                        "(one output file, identical to the serial one; resumable; docs/scaling.md)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="--executor dask: address of a running Dask scheduler, e.g. tcp://host:8786 (default: a "
                        "local cluster on this machine)")
    p.add_argument("--workers", type=int, default=None,
                   help="--executor dask without --scheduler: worker processes of the local cluster (default 1, "
                        "computing with torch's default threads: the serial run's arithmetic, so the same file; "
                        "docs/scaling.md)")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="--executor dask: torch threads of each task (default: the serial run's threads shared "
                        "among the local workers; 1 with --scheduler). Another count than the serial run's is "
                        "recorded in the file (the last float32 bit may depend on it)")
    p.add_argument("--plot", help="one spectrum: also save a PNG of the spectrum")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_constant_ranges(items: list[str], material: Material | None = None) -> dict[str, tuple[float, float]]:
    """``["2YY=-1,1.5", ...]`` → {"2YY": (-1.0, 1.5)}: absolute sampling ranges (N/m) of the material's constants
    (default aluminium)."""
    ranges: dict[str, tuple[float, float]] = {}
    names = (ALUMINIUM if material is None else material).names
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in names:
            raise ValueError(f"--constant-range {item!r}: write NAME=LO,HI with NAME one of "
                             f"{', '.join(names)}, e.g. {names[-1]}=-1,1.5")
        lo, hi = parse_floats(values, 2, f"--constant-range {name} bounds")
        if not lo < hi:
            raise ValueError(f"--constant-range {item!r}: LO must be below HI (N/m)")
        ranges[name] = (lo, hi)
    return ranges


def _is_legacy(args: argparse.Namespace) -> bool:
    """The aluminium command of conventions §6: no material and no instrument named."""
    return args.material is None and args.instrument is None and args.shells is None


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """The experiment of the flags: the standard one for the aluminium command (``--ei`` re-masks the standard
    axes for that Ei, as before); otherwise ``Experiment.create`` (instrument defaults, default grid for Ei)."""
    from phonon_ml_core.specs import STANDARD_EXPERIMENT, Experiment
    from phonon_ml_core.specs.grid import Grid, standard_grid

    if _is_legacy(args):
        grid = standard_grid() if args.ei is None or args.ei == STANDARD_EXPERIMENT.ei_mev else \
            Grid.from_axes(standard_grid().q, standard_grid().energy, ei_mev=args.ei)
        return Experiment.create(instrument=STANDARD_EXPERIMENT.instrument, ei_mev=grid.ei_mev,
                                 chopper_package=args.chopper, chopper_frequency=args.chopper_frequency, grid=grid)
    return Experiment.create(instrument=args.instrument or STANDARD_EXPERIMENT.instrument, ei_mev=args.ei,
                             chopper_package=args.chopper, chopper_frequency=args.chopper_frequency)


def material_from_args(args: argparse.Namespace) -> Material | None:
    """The material of the flags, with ``--shells`` when given; None for the aluminium command (aluminium with the
    legacy physics, conventions §6)."""
    if _is_legacy(args):
        return None
    return get_material(ALUMINIUM if args.material is None else args.material, n_shells=args.shells)


def _settings(args) -> SimulationSettings:
    from phonon_ml_core.simulator import SimulationSettings

    return SimulationSettings(quantity="chi''" if args.quantity == "chi" else "S", normalize=not args.no_normalize,
                              multiphonon=not args.no_multiphonon, debye_waller=not args.no_debye_waller,
                              mesh_density=args.mesh_density)


def _check_executor(args: argparse.Namespace) -> None:
    """--executor/--scheduler/--workers/--threads-per-worker make sense together, and only for a data set."""
    dask = args.executor == "dask"
    if not dask and (args.scheduler is not None or args.workers is not None or args.threads_per_worker is not None):
        raise ValueError("--scheduler, --workers and --threads-per-worker belong to --executor dask: add "
                         "--executor dask or drop them")
    if dask and args.count is None:
        raise ValueError("--executor dask simulates data sets (--count N); one spectrum needs no cluster")
    if dask and args.shard is not None:
        raise ValueError("--executor dask splits the work itself and writes the whole set: drop --shard (or use "
                         "--shard i/n without --executor dask, then `phonon-ml merge`)")
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("--workers sizes the local cluster; with --scheduler the cluster's own workers are used: "
                         "drop one of them")
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be at least 1")
    if args.threads_per_worker is not None and args.threads_per_worker < 1:
        raise ValueError("--threads-per-worker must be at least 1")


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.report.simulation import dataset_for, sampling_for, simulate_for
    from phonon_ml_core.simulator.dataset import parse_shard

    if (args.force_constants is None) == (args.count is None):
        raise ValueError("give either --force-constants F1,...,Fn (one spectrum) or --count N (a data set)")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    _check_executor(args)
    material = material_from_args(args)
    named = ALUMINIUM if material is None else material
    if args.count is not None:
        if args.count < 1:
            raise ValueError("--count must be at least 1")
        experiment = experiment_from_args(args)
        check_memory(8.0 * args.count * experiment.grid.q.size * experiment.grid.energy.size, f"--count {args.count}",
                     "simulate fewer spectra, or split the set with --shard i/n")
        if args.relative_range is not None:
            check_interval(parse_floats(args.relative_range, 2, "--range bounds"), "--range", low=0.0)
        if args.temperature_range:
            check_interval(parse_floats(args.temperature_range, 2, "temperatures"), "--temperature-range", "K",
                           low=0.0, low_inclusive=False)
        if args.linewidth_range:
            check_interval(parse_floats(args.linewidth_range, 2, "linewidths"), "--linewidth-range", low=0.0)
        config = replace(sampling_for(named, seed=args.seed,
                                      temperature=300.0 if args.temperature is None else args.temperature,
                                      temperature_range=tuple(parse_floats(args.temperature_range, 2, "temperatures"))
                                      if args.temperature_range else None,
                                      linewidth_range=tuple(parse_floats(args.linewidth_range, 2, "linewidths"))
                                      if args.linewidth_range else None),
                         absolute_ranges=parse_constant_ranges(args.constant_range, named))
        if args.relative_range is not None:
            config = replace(config, relative_range=tuple(parse_floats(args.relative_range, 2, "--range bounds")))
        if config.temperature <= 0:
            raise ValueError("--temperature must be positive (K)")
        options = {"batch_size": args.batch_size, "overwrite": args.overwrite, "progress": not args.no_progress,
                   "device": args.device}
        if args.executor == "dask":
            from phonon_ml_core.simulator.distributed import generate_dataset_dask

            out = generate_dataset_dask(args.output, args.count, config, settings=_settings(args), material=material,
                                        experiment=experiment, scheduler=args.scheduler, workers=args.workers,
                                        threads_per_worker=args.threads_per_worker, **options)
        else:
            out = dataset_for(args.output, args.count, material, experiment, config, _settings(args),
                              shard=parse_shard(args.shard), **options)
        print(f"wrote {out}: {named.name} on {experiment.describe()}")
        return 0
    fc = parse_floats(args.force_constants, named.n_constants, "force constants", names=named.names)
    if args.temperature is None:
        raise ValueError("--temperature T (K) is required for one spectrum")
    out = check_output_path(args.output, args.overwrite)
    experiment = experiment_from_args(args)
    spectrum = simulate_for(material, experiment, fc, args.temperature, settings=_settings(args),
                            lattice_parameter=args.lattice_parameter, linewidth=args.linewidth, device=args.device)
    spectrum.to_hdf5(out, overwrite=args.overwrite)
    if args.plot:
        from phonon_ml_core.report.plotting import plot_spectrum
        plot_spectrum(spectrum, args.plot)
    print(f"wrote {out}: {named.name} on {experiment.describe()}")
    return 0
