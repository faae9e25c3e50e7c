"""`phonon-ml demo`: the README's main job (see :mod:`phonon_ml_core.report.demo`)."""
from __future__ import annotations

import argparse

from phonon_ml_core.cli.options import OWN_OUTPUT_ROOT


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="run the whole workflow on simulated data of a metal (or on --input files)",
                       description="Simulate measured-like spectra of a metal (default aluminium on ARCS at 50 meV) "
                                   "from known constants (resolution, background, noise; Mantid NeXus files), "
                                   "preprocess them, predict (aluminium/ARCS-50: the shipped bundle; otherwise a "
                                   "small bundle trained on the spot), fit with Nelder–Mead and the gradient method, "
                                   "and write a report comparing recovered and true constants. With --input, the "
                                   "same on your own files (Mantid .nxs, NXSPE or phonon-ml .h5).")
    p.add_argument("--material", default=None, help="built-in material (element symbol) or material file (default Al)")
    p.add_argument("--instrument", default=None, help="instrument (default: ARCS, the standard experiment)")
    p.add_argument("--ei", type=float, default=None, help="incident energy, meV (default: the instrument's)")
    p.add_argument("--output-dir", default=f"{OWN_OUTPUT_ROOT}/demo",
                   help="report folder (default %(default)s, created with its parent)")
    p.add_argument("--input", nargs="+", help="run on these files instead of simulated data")
    p.add_argument("--noise", type=float, default=0.04,
                   help="relative counting noise of the simulated data (default 0.04)")
    p.add_argument("--methods", default="nelder-mead,gradient", help="fit methods (comma-separated)")
    p.add_argument("--no-predict", action="store_true", help="skip the ML prediction")
    p.add_argument("--temperature", type=float, help="with --input: sample temperature, K (overrides the files')")
    p.add_argument("--samples", type=int, default=10000, help="latent draws per spectrum for the prediction "
                                                             "(default 10000)")
    p.add_argument("--quick", action="store_true", help="reduced mode (for tests): one temperature (300 K), 500 latent "
                                                        "draws and, for other materials, a tiny on-the-spot bundle")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.report.demo import run_demo
    from phonon_ml_core.report.demo_model import QUICK_SMALL_MODEL

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in ("nelder-mead", "gradient")]
    if bad or not methods:
        raise ValueError(f"--methods takes nelder-mead and/or gradient, got {args.methods!r}")
    if args.temperature is not None and not args.input:
        raise ValueError("--temperature applies to --input files; the demo's own data carry their temperature")
    kw = ({"temperatures": (300.0,), "n_samples": min(args.samples, 500), "small_model": QUICK_SMALL_MODEL}
          if args.quick else {"n_samples": args.samples})
    run_demo(args.output_dir, inputs=args.input, noise=args.noise, seed=args.seed, methods=methods,
             predict=not args.no_predict, temperature=args.temperature, material=args.material,
             instrument=args.instrument, ei_mev=args.ei, **kw)
    return 0
