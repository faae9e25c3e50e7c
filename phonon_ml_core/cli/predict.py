"""`phonon-ml predict`: force constants with uncertainties from a model bundle (conventions §6)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.data.validation import check_spectrum_values

if TYPE_CHECKING:
    from phonon_ml_core.data.spectrum import Spectrum


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="predict force constants from spectra with a model bundle",
                       description="Force constants (mean and standard deviation over latent samples), the "
                                   "spectrum simulated from them and its NMSE against each input spectrum.")
    p.add_argument("--model", help="model bundle: a folder or a shipped bundle's name, e.g. al_arcs_ei50_fcvae30 "
                   "(default: the bundle shipped in models/)")
    p.add_argument("--input", "-i", nargs="+", required=True,
                   help="spectra on the bundle's grid (our .h5; one spectrum or a set per file) or reduced files "
                        "(Mantid .nxs from SofQW, .nxspe), preprocessed onto the bundle's grid")
    p.add_argument("--output", "-o", required=True, help="RESULT.json")
    p.add_argument("--temperature", type=float, help="override the temperature in the input files, K")
    p.add_argument("--material", help="the inputs' material (element symbol or material file); must be the "
                                      "bundle's (default: the bundle's)")
    p.add_argument("--ei", type=float, help="incident energy (meV) of reduced files that record none")
    p.add_argument("--samples", type=int, default=10000, help="latent samples per spectrum (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="PNG comparing measured and simulated |Q|-averaged intensity")
    p.add_argument("--series-plot", metavar="FIG.png",
                   help="PNG of the constants and zone-boundary frequencies against temperature (latent-sampling "
                        "spread as a band); needs ≥ 2 inputs with temperatures (docs/fitting.md, 'Series views')")
    p.add_argument("--series-compare", nargs="+", metavar="RESULT.json", default=None,
                   help="with --series-plot: RESULT.json files of `phonon-ml fit` (independent, or --joint "
                        "[--compare-independent]) drawn beside the predictions")
    p.add_argument("--device", default="cpu",
                   help="torch device of the simulated reconstructions, e.g. cuda (default cpu)")
    p.add_argument("--overwrite", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.prediction.inputs import check_material
    from phonon_ml_core.prediction.predict import (
        bundle_experiment,
        bundle_material,
        predict_spectra,
        read_inputs_on_grid,
        resolve_bundle,
        result_records,
        write_results,
    )
    from phonon_ml_core.specs import get_material

    check_output_path(args.output, args.overwrite)
    if args.series_compare and not args.series_plot:
        raise ValueError("--series-compare needs --series-plot FIG.png")
    if args.series_plot:
        check_output_path(args.series_plot, args.overwrite)
        for f in args.series_compare or []:
            if not Path(f).is_file():
                raise ValueError(f"--series-compare file {f} does not exist: give RESULT.json files of phonon-ml fit")
    bundle = resolve_bundle(args.model)
    material = bundle_material(bundle)
    if args.material is not None:
        asked = get_material(args.material)
        if (asked.element, asked.lattice) != (material.element, material.lattice):
            raise ValueError(f"the model was trained for {material.name} ({material.lattice}, "
                             f"{', '.join(material.names)}) but --material is {asked.name} ({asked.lattice}, "
                             f"{', '.join(asked.names)}): use a bundle trained for {asked.name} (`phonon-ml train` on "
                             f"a data set simulated with --material {asked.element})")
    check_predict_ei(args.ei, args.input, bundle.grid.ei_mev)
    spectra, names = read_inputs_on_grid(args.input, bundle.grid, args.temperature,
                                         material=None if args.material is None else material, ei_mev=args.ei)
    for s, name in zip(spectra, names):
        check_material(s, material, name, by_model=True)
    if not spectra:
        raise ValueError(f"the inputs {', '.join(args.input)} hold zero spectra: nothing to predict")
    for s, name in zip(spectra, names):
        check_spectrum_values(s, name)
    if args.series_plot and len(spectra) < 2:
        raise ValueError(f"--series-plot needs a temperature series (≥ 2 spectra), got {len(spectra)}")
    entries = predict_spectra(bundle, spectra, n_samples=args.samples, seed=args.seed, device=args.device)
    records = result_records(entries, names, material, bundle_experiment(bundle))
    write_results(args.output, records, overwrite=args.overwrite)
    if args.series_plot:
        _series_plot(records, args.series_compare or [], args.series_plot, args.overwrite)
    if args.plot:
        _plot(spectra, entries, names, args.plot)
    for name, e in zip(names, entries):
        fc = ", ".join(f"{n} {v:.2f}±{s:.2f}" for n, v, s in zip(e["names"], e["force_constants"], e["std"]))
        print(f"{Path(name).name}: [{fc}] N/m, NMSE {e['nmse']:.3f} "
              f"({e['nmse_background_slope']:.3f} with the best background slope, as `phonon-ml fit`)")
    print(f"wrote {args.output}")
    return 0


def _series_plot(records: list[dict], compare: list[str], path: str, overwrite: bool) -> None:
    from phonon_ml_core.report.ml_series import ml_label, ml_series_figure, track_from_entries, tracks_from_result

    tracks = [track_from_entries(records, ml_label(records), "band")]
    for f in compare:
        tracks += tracks_from_result(f)
    ml_series_figure(tracks, path, overwrite=overwrite, title=f"{records[0]['material']}: ML predictions"
                     + (" beside fits" if compare else "") + " against temperature")
    print(f"wrote {path}")


def _plot(spectra: list[Spectrum], entries: list[dict], names: list[str], path: str) -> None:
    from phonon_ml_core.report.plotting import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 1.6 + 1.2 * len(spectra)))
    for k, (s, e, name) in enumerate(zip(spectra, entries, names)):
        off = 0.5 * k
        x = s if s.normalization == "mean" else s.normalized()
        ax.plot(s.grid.energy, x.q_averaged() + off, "o", ms=2.5, color=f"C{k}",
                label=f"{Path(name).stem} (NMSE {e['nmse']:.3f})")
        if e["reconstruction"] is not None:
            ax.plot(s.grid.energy, e["reconstruction"].q_averaged() + off, "-", color=f"C{k}")
    ax.set_xlabel("Energy transfer (meV)")
    ax.set_ylabel("|Q|-averaged χ'' (offset)")
    ax.set_title("measured (points) and simulated from the prediction (lines)", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def check_predict_ei(ei_mev: float | None, paths: list[str], bundle_ei_mev: float | None) -> None:
    """--ei sets the Ei (meV) of reduced files; a preprocessed ``.h5`` input already lives on a grid for the
    bundle's Ei, so an --ei that disagrees with it is refused (naming the file) instead of silently ignored."""
    from phonon_ml_core.prediction.inputs import is_reduced

    if ei_mev is None or bundle_ei_mev is None:
        return
    for p in paths:
        if not is_reduced(p) and abs(float(ei_mev) - float(bundle_ei_mev)) > 1e-6 * max(float(bundle_ei_mev), 1.0):
            raise ValueError(f"--ei {ei_mev:g} meV: {p} is a preprocessed spectrum and the model is for Ei = "
                             f"{float(bundle_ei_mev):g} meV; --ei only sets the Ei of reduced files (.nxs, .nxspe): "
                             "drop --ei, or use a model trained for that Ei")
