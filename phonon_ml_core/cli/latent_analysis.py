"""``phonon-ml latent-analysis``: active latent dimensions, decoder sensitivity and correlations of a bundle."""
from __future__ import annotations

import argparse
from pathlib import Path

from phonon_ml_core.cli.choices import LATENT_DELTA, LATENT_THRESHOLD


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "latent-analysis",
        help="latent-space analysis of a model bundle (active dimensions, sensitivity, correlations)",
        description="Mean KL per latent dimension over the given spectra (sorted; active above --threshold nats), "
                    "the change of the decoded spectrum when the mean code moves by ±--delta along each dimension "
                    "(numbers and maps: the study's Fig. S2–S5), and Pearson correlations of the latent means with "
                    "the force constants (when the data are labelled) and between dimensions. Writes CSV tables, "
                    "PNG figures and latent_summary.json into --output-dir (docs/evaluation.md).")
    p.add_argument("--model", help="model bundle: a folder or a shipped bundle's name, e.g. al_arcs_ei50_fcvae30 "
                   "(default: the bundle shipped in models/)")
    p.add_argument("--data", "-i", nargs="+", required=True,
                   help="spectra on the bundle's grid (our .h5; sets or single spectra, concatenated)")
    p.add_argument("--output-dir", "-o", required=True, help="folder for the tables and figures (created)")
    p.add_argument("--threshold", type=float, default=LATENT_THRESHOLD,
                   help=f"mean KL (nats) above which a dimension is active (default {LATENT_THRESHOLD})")
    p.add_argument("--delta", type=float, default=LATENT_DELTA,
                   help=f"step along each latent dimension for the sensitivity (default ±{LATENT_DELTA})")
    p.add_argument("--max-spectra", type=int, default=None, help="use at most this many spectra (the first ones)")
    p.add_argument("--prefix", default="latent", help="file-name prefix (default 'latent')")
    p.add_argument("--no-figures", action="store_true", help="tables and JSON only")
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.data.fileio import check_output_dir
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.learn.inputs import onto_model_grid
    from phonon_ml_core.prediction.predict import resolve_bundle, shipped_bundle_path
    from phonon_ml_core.readers import read_spectrum
    from phonon_ml_core.report.latent import analyse_latent, write_latent_analysis

    out = check_output_dir(args.output_dir)
    bundle = resolve_bundle(args.model)
    if hasattr(bundle, "members"):
        raise ValueError(f"--model {args.model} is an ensemble of {len(bundle.members)} bundles and each has its own "
                         f"latent space: analyse one member, --model {Path(args.model) / 'member_0'}")
    sets = []
    for path in args.data:
        s = read_spectrum(path)
        if not s.grid.same_as(bundle.grid):   # as predict: a few missing edge pixels are filled, else refused
            try:
                s = Spectrum.stack([onto_model_grid(one, bundle.grid) for one in s])
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
        sets.append(s)
    if args.max_spectra is not None and args.max_spectra < 1:
        raise ValueError("--max-spectra must be ≥ 1")
    if len(sets) == 1 and sets[0].is_set:
        spectra = sets[0]
        if args.max_spectra is not None and args.max_spectra < spectra.n_spectra:
            spectra = Spectrum.stack([spectra[i] for i in range(args.max_spectra)])
    else:
        parts = [one for s in sets for one in s]
        spectra = Spectrum.stack(parts[:args.max_spectra] if args.max_spectra else parts)
    if spectra.n_spectra < 2:
        raise ValueError(f"--data holds {spectra.n_spectra} spectrum: correlations and mean activities need at least "
                         "2 spectra (a set simulated with `phonon-ml simulate --count N`)")
    res = analyse_latent(bundle, spectra, threshold=args.threshold, delta=args.delta)
    summary = write_latent_analysis(res, out, prefix=args.prefix, figures=not args.no_figures,
                                    extra={"model": str(args.model or shipped_bundle_path()),
                                           "data": list(args.data)})
    kl = ", ".join(f"z{d} {res.kl[d]:.3g}" for d in res.order[:min(6, res.latent_dim)])
    print(f"{res.family}, latent {res.latent_dim}, {res.n_spectra} spectra: {res.n_active} active dimensions "
          f"({res.activity_measure} > {res.threshold:g}); top: {kl}")
    if res.fc_correlation is not None and "most_correlated_dimension" in summary:
        best = ", ".join(f"{k}: z{v['dimension']} (r = {v['r']:.2f})"
                         for k, v in summary["most_correlated_dimension"].items()
                         if v["r"] is not None)
        print(f"most correlated dimensions: {best}")
    print(f"wrote {len(summary['files'])} files to {out}")
    return 0
