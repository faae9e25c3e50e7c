"""``phonon-ml fit``: least-squares force constants of any material for each spectrum of the input files.

Inputs: phonon-ml ``.h5`` spectra, or reduced Mantid files (processed NeXus from SofQW, NXSPE) that are
preprocessed on the way in onto the default grid for their Ei (conventions §6). The options that name a material
and an experiment (:func:`add_material_options`) are shared with ``predict``.
"""
from __future__ import annotations

import argparse
import logging
import time

from typing import TYPE_CHECKING

import numpy as np

from phonon_ml_core.cli.checks import check_ei_matches_inputs, check_series_temperatures
from phonon_ml_core.cli.choices import FIT_METHODS as METHODS
from phonon_ml_core.cli.choices import LINEWIDTH_MODELS, PRIOR_CHOICES, SERIES_MODELS
from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.jsonio import write_json

if TYPE_CHECKING:
    from phonon_ml_core.specs import Experiment, Material

log = logging.getLogger(__name__)


def add_material_options(p: argparse.ArgumentParser) -> None:
    """--material, --shells, --lattice-parameter, --instrument, --chopper, --chopper-frequency, --ei."""
    p.add_argument("--material", default=None,
                   help="built-in element symbol (Al, Cu, Fe, …; `phonon-ml materials`) or a material file "
                        "(.json/.yaml); default: the material recorded in the input, else aluminium")
    p.add_argument("--shells", type=int, default=None, help="neighbour shells of the model (default: the material's)")
    p.add_argument("--lattice-parameter", type=float, default=None,
                   help="Å; default the material's a(T) at the spectrum's temperature")
    p.add_argument("--instrument", default=None, help="ARCS, SEQUOIA, CNCS, HYSPEC, MAPS, MARI, MERLIN, LET "
                   "(default: the file's when recorded, else ARCS)")
    p.add_argument("--chopper", default=None, help="chopper package as resins names it (default: the instrument's)")
    p.add_argument("--chopper-frequency", type=int, default=None, help="Hz (default: the instrument's)")
    p.add_argument("--ei", type=float, default=None, help="incident energy, meV (default: from the file)")


def material_from_args(args: argparse.Namespace) -> Material | None:
    """The material named by --material/--shells, or None when --material is not given (each input's recorded
    material, else aluminium, with --shells applied by :func:`input_material`; clear error for an unknown one)."""
    from phonon_ml_core.specs import get_material

    if args.material is None:
        return None
    return get_material(args.material, n_shells=args.shells)


def input_material(spectrum, material: Material | None, shells: int | None) -> Material:
    """What one input is fitted with: ``material`` (--material) when given, else the material the input records
    (aluminium when none), with ``shells`` (--shells) neighbour shells when given."""
    from phonon_ml_core.fitting.inputs import resolve_material

    m = resolve_material(spectrum, material)
    return m if material is not None or shells is None else m.with_shells(shells)


def experiment_for(spectrum, args: argparse.Namespace) -> Experiment | None:
    """The experiment of ``spectrum`` with the --instrument/--chopper/--chopper-frequency overrides (None: none
    given, the fit takes the spectrum's or its grid's defaults)."""
    from phonon_ml_core.prediction.inputs import known_instrument
    from phonon_ml_core.specs import Experiment, SpecError

    if args.instrument is None and args.chopper is None and args.chopper_frequency is None:
        return None
    grid = spectrum.grid
    own = spectrum.experiment
    instrument = args.instrument or (own.instrument if own is not None else None) \
        or known_instrument(spectrum.instrument)
    if instrument is None:
        raise ValueError("give --instrument with --chopper/--chopper-frequency (the file names no known instrument)")
    try:
        return Experiment.create(instrument, grid.ei_mev, chopper_package=args.chopper,
                                 chopper_frequency=args.chopper_frequency, grid=grid)
    except SpecError as exc:
        raise ValueError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fit", help="fit force constants to measured spectra by Nelder-Mead or gradient descent",
        description="Fit the force constants of the material (names from its lattice and shells, e.g. fcc "
                    "1XX,1XY,1ZZ,2XX,2YY; bcc 1XX,1XY,2XX,2YY; N/m) to each spectrum of the input files by "
                    "minimising the NMSE against the powder simulator (docs/fitting.md).")
    p.add_argument("--method", default=None, choices=METHODS,
                   help="nelder-mead (scipy, bounded) or gradient (autograd multi-start + L-BFGS-B); default: the "
                        "Python API's (FIT_DEFAULTS in phonon_ml_core/fitting/defaults.py: nelder-mead)")
    p.add_argument("--input", "-i", required=True, nargs="+",
                   help="phonon-ml .h5 spectra (one spectrum or a set) or reduced files (Mantid .nxs, .nxspe)")
    p.add_argument("--output", "-o", required=True, help="RESULT.json (one entry per input spectrum)")
    p.add_argument("--temperature", type=float, default=None, help="K; overrides the temperature in the files")
    add_material_options(p)
    p.add_argument("--fit-linewidth", action=argparse.BooleanOptionalAction, default=None,
                   help="fit the intrinsic linewidth γ (HWHM = γ·E) as a nuisance parameter (default: on, as the "
                        "Python API: FIT_DEFAULTS)")
    p.add_argument("--fit-background", action=argparse.BooleanOptionalAction, default=None,
                   help="fit a residual background slope in energy (default: on, as the Python API: FIT_DEFAULTS; "
                        "docs/fitting.md)")
    p.add_argument("--start", default=None, help="starting constants F1,...,Fn in N/m in the material's order "
                   "(default: its reference)")
    p.add_argument("--max-evaluations", type=int, default=None, help="simulator-call budget per spectrum")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the gradient fit's extra starts (default: FIT_DEFAULTS, 0)")
    p.add_argument("--plot", default=None,
                   help="PNG: for one spectrum the data, fit and residual maps with |Q|- and E-averaged cuts; for "
                        "several the constants and NMSE against temperature (constants at a bound marked in red)")
    p.add_argument("--joint", action="store_true",
                   help="fit all inputs together as one temperature series (each constant a smooth function of T; "
                        "docs/fitting.md, 'Joint fit of a temperature series')")
    p.add_argument("--series-model", default="linear", choices=SERIES_MODELS,
                   help="with --joint: constants linear or quadratic in T, or free per temperature with a smoothness "
                        "penalty chosen by leave-one-temperature-out validation (default: linear)")
    p.add_argument("--smoothness", type=float, default=None,
                   help="with --joint --series-model free: the penalty strength (default: chosen by validation)")
    p.add_argument("--compare-independent", action="store_true",
                   help="with --joint: also fit each spectrum alone and put those fits in the output and the plot")
    p.add_argument("--linewidth-model", default="proportional", choices=LINEWIDTH_MODELS,
                   help="proportional: HWHM = γ·E (default); affine: HWHM = γ0 + γ·E with γ0 (meV) the extra nuisance "
                        "parameter linewidth_offset (not with --joint; docs/fitting.md, 'Nuisance model')")
    p.add_argument("--prior", default="none", choices=PRIOR_CHOICES,
                   help="Gaussian priors centred on the material's reference constants: 'added' on the constants of "
                        "shells beyond two (use with --material M --shells 4), 'all' on every constant; widths: half "
                        "the material's sampling range (docs/fitting.md, 'Nuisance model')")
    p.add_argument("--prior-width-scale", type=float, default=1.0, help="multiply the prior widths (default 1)")
    p.add_argument("--device", default="cpu",
                   help="torch device of the simulator, e.g. cuda (default cpu; not with --joint)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def prior_from_args(args: argparse.Namespace, material: Material):
    """The --prior of ``material`` (None for 'none')."""
    from phonon_ml_core.fitting.priors import reference_prior

    if args.prior == "none":
        return None
    if not args.prior_width_scale > 0:
        raise ValueError(f"--prior-width-scale must be > 0, got {args.prior_width_scale}")
    return reference_prior(material, args.prior, width_scale=args.prior_width_scale)


def apply_fit_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the fit options left unset (None) from :data:`~phonon_ml_core.fitting.defaults.FIT_DEFAULTS`, the one
    home of the defaults shared with the Python API and the Mantid algorithm (imported here, not at parser build,
    so that ``fit --help`` stays torch-free)."""
    from phonon_ml_core.fitting.defaults import FIT_DEFAULTS

    for name in ("method", "fit_linewidth", "fit_background", "seed"):
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(FIT_DEFAULTS, name))
    return args


def parse_constants(text: str | None, material: Material, flag: str) -> np.ndarray | None:
    """'F1,...,Fn' (N/m) → (n,) for ``material``, with an error naming its constants for a wrong count."""
    if text is None:
        return None
    try:
        v = np.array([float(x) for x in text.replace(" ", "").split(",") if x != ""])
    except ValueError as exc:
        raise ValueError(f"{flag} must be comma-separated numbers (N/m), got {text!r}") from exc
    if v.shape != (material.n_constants,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{flag} must be {material.n_constants} finite numbers for {material.name}, in the order "
                         f"{','.join(material.names)} (N/m), got {text!r}")
    return v


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.fitting.inputs import resolve_experiment
    from phonon_ml_core.prediction.inputs import read_inputs

    apply_fit_defaults(args)
    out = check_output_path(args.output, args.overwrite)
    if args.plot is not None:
        check_output_path(args.plot, args.overwrite)
    if args.max_evaluations is not None and args.max_evaluations < 1:
        raise ValueError("--max-evaluations must be a positive integer")
    if args.lattice_parameter is not None and not args.lattice_parameter > 0:
        raise ValueError(f"--lattice-parameter must be a positive number of Å, got {args.lattice_parameter}")
    if not args.joint and (args.series_model != "linear" or args.smoothness is not None or args.compare_independent):
        raise ValueError("--series-model, --smoothness and --compare-independent need --joint")
    if args.joint and args.smoothness is not None and args.series_model != "free":
        raise ValueError("--smoothness needs --series-model free")
    if args.joint and args.device.strip().lower() != "cpu":
        raise ValueError("--joint runs on the CPU: omit --device (or fit the spectra one by one with --device)")
    if args.joint and args.lattice_parameter is not None:
        raise ValueError("--lattice-parameter cannot be used with --joint: the joint fit takes a(T) from the "
                         "material at each temperature")
    material = material_from_args(args)
    inputs = read_inputs(args.input, ei_mev=args.ei, instrument=args.instrument, temperature=args.temperature,
                         material=material)
    check_ei_matches_inputs(args.ei, inputs)
    items, sources, experiments, materials = [], [], [], []
    for inp in inputs:
        for i, member in enumerate(inp.spectrum):
            m = input_material(member, material, args.shells)
            e = resolve_experiment(member, experiment_for(member, args))  # errors here, before any fit
            items.append(member)
            materials.append(m)
            experiments.append(e)
            sources.append({"input": inp.path, "index": i if inp.spectrum.is_set else None,
                            "reduced_input": inp.reduced})
    if any(not m.same_as(materials[0]) for m in materials):
        raise ValueError("the inputs hold different materials (" + ", ".join(sorted({m.name for m in materials}))
                         + "): fit each material in its own run")
    start = parse_constants(args.start, materials[0], "--start")
    prior = prior_from_args(args, materials[0])
    if args.linewidth_model == "affine" and (args.joint or not args.fit_linewidth):
        raise ValueError("--linewidth-model affine needs a fitted linewidth (not --no-fit-linewidth) and is not "
                         "available with --joint")
    for s in items:
        if s.temperature is None or not np.all(np.isfinite(s.temperatures())):
            raise ValueError("an input has no temperature: give --temperature (K)")
    if args.joint:
        return run_joint(args, out, items, sources, materials[0], experiments, start, prior)
    from phonon_ml_core.fitting import fit_spectrum, series_of

    t0 = time.perf_counter()
    results = [fit_spectrum(s, method=args.method, start=start, fit_linewidth=args.fit_linewidth,
                            fit_background=args.fit_background, seed=args.seed, max_evaluations=args.max_evaluations,
                            lattice_parameter=args.lattice_parameter, material=m, experiment=e,
                            linewidth_model=args.linewidth_model, prior=prior, device=args.device)
               for s, m, e in zip(items, materials, experiments)]
    series = series_of(results) if len(results) > 1 else None
    if args.plot:
        plot_fits(results, items, args.plot, args.overwrite)
    entries = []
    for src, r in zip(sources, results):
        entries.append({**r.to_dict(), **src})
        idx = "" if src["index"] is None else f"[{src['index']}]"
        print(f"{src['input']}{idx}: {r.material.name}, T = {r.temperature:.0f} K, NMSE {r.nmse:.4f}, "
              f"{dict(zip(r.names, np.round(r.force_constants, 3).tolist()))} ± {np.round(r.std, 3).tolist()} N/m"
              + ("" if r.std_calibrated is None else
                 f" (calibrated for model error ± {np.round(r.std_calibrated, 3).tolist()})") + ", "
              + ("" if r.background is None else f"background slope b1 {r.background[1]:.5f}/meV, ")
              + f"{r.evaluations} simulator calls, {r.seconds:.1f} s{'' if r.converged else ' (NOT converged)'}")
        if r.at_bounds:
            print(f"    WARNING: ended on a bound of the search: {', '.join(r.at_bounds)} (not a minimum of the "
                  "misfit; widen the bounds, check the start, the material and the data)")
        for point, f in entries[-1]["frequencies_thz"].items():
            sd = (entries[-1]["frequencies_std_thz"] or {}).get(point)
            print(f"    {point}: " + ", ".join(f"{v:.3f}" + ("" if sd is None or sd[j] is None else f"±{sd[j]:.3f}")
                                           for j, v in enumerate(f)) + " THz")
    doc = {"results": entries, "method": args.method, "fit_linewidth": bool(args.fit_linewidth),
           "linewidth_model": args.linewidth_model, "prior": None if prior is None else prior.to_dict(),
           "fit_background": bool(args.fit_background), "material": materials[0].name,
           "names": list(materials[0].names), "total_seconds": time.perf_counter() - t0,
           "series": series.to_dict() if series is not None and len(entries) > 1 else None}
    write_json(out, doc, indent=1)
    print(f"wrote {out}" + (f" and {args.plot}" if args.plot else ""))
    return 0



def run_joint(args: argparse.Namespace, out, items, sources, material: Material, experiments, start,
              prior=None) -> int:
    """``fit --joint``: one joint fit of all input spectra; RESULT.json holds one entry per input plus the series."""
    from phonon_ml_core.fitting import fit_spectrum
    from phonon_ml_core.fitting.joint import fit_joint

    check_series_temperatures([float(s.temperature) for s in items], [_label(src) for src in sources],
                              args.series_model)
    t0 = time.perf_counter()
    joint = fit_joint(items, material=material, experiment=experiments, model=args.series_model,
                      fit_linewidth=args.fit_linewidth, fit_background=args.fit_background, start=start,
                      smoothness=args.smoothness, max_evaluations=args.max_evaluations or 400, prior=prior)
    independent = None
    if args.compare_independent:
        independent = [fit_spectrum(s, method=args.method, start=start, fit_linewidth=args.fit_linewidth,
                                    fit_background=args.fit_background, seed=args.seed, material=material,
                                    experiment=e, prior=prior) for s, e in zip(items, experiments)]
    if args.plot:
        from phonon_ml_core.report.series_figure import series_figure

        series_figure(joint, args.plot, independent=independent, overwrite=args.overwrite)
    entries = [{**e, **src} for e, src in zip(joint.entries, sources)]
    for e in entries:
        idx = "" if e["index"] is None else f"[{e['index']}]"
        print(f"{e['input']}{idx}: T = {e['temperature']:.0f} K, NMSE {e['nmse']:.4f}, "
              + ", ".join(f"{n} {v:.3f}±{s:.3f}" for n, v, s in zip(e["names"], e["force_constants"], e["std"]))
              + " N/m")
    doc = {"results": entries, "method": f"joint-{args.series_model}", "series_model": args.series_model,
           "fit_linewidth": bool(args.fit_linewidth), "fit_background": bool(args.fit_background),
           "material": material.name, "names": list(material.names), "mean_nmse": joint.mean_nmse,
           "total_seconds": time.perf_counter() - t0, "converged": joint.converged, "message": joint.message,
           "series": joint.series,
           "independent": None if independent is None else [r.to_dict() for r in independent]}
    write_json(out, doc, indent=1)
    print(f"joint {args.series_model} fit of {len(entries)} spectra: mean NMSE {joint.mean_nmse:.4f}, "
          f"{joint.seconds:.1f} s; wrote {out}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def _label(source: dict) -> str:
    """'file.h5' or 'file.h5[i]' for a member of a set."""
    return source["input"] + ("" if source["index"] is None else f"[{source['index']}]")


def plot_fits(results, spectra, path: str, overwrite: bool) -> None:
    """--plot: the figure of the one fit (maps, cuts, constants), or the constants against T of several."""
    from phonon_ml_core.report.plotting import plot_fit
    from phonon_ml_core.report.series_figure import fits_figure

    if len(results) == 1:
        check_output_path(path, overwrite)
        plot_fit(results[0], spectra[0], path)
    else:
        fits_figure(results, path, overwrite=overwrite)
