"""`phonon-ml demo`: the README's main job (see :mod:`phonon_ml_core.report.demo`)."""
from __future__ import annotations

import argparse

from phonon_ml_core.report.demo import run_demo


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="run the whole workflow on simulated aluminium data (or on --input files)",
                       description="Simulate measured-like aluminium spectra from known constants (resolution, "
                                   "background, noise; Mantid NeXus files), preprocess them, predict with the "
                                   "shipped bundle, fit with Nelder–Mead and the gradient method, and write a "
                                   "report comparing recovered and true constants. With --input, the same on "
                                   "your own files (Mantid .nxs, NXSPE or phonon-ml .h5).")
    p.add_argument("--output-dir", default="phonon_ml_output/demo", help="report folder (default %(default)s)")
    p.add_argument("--input", nargs="+", help="run on these files instead of simulated data")
    p.add_argument("--noise", type=float, default=0.04, help="relative counting noise of the simulated data (default 0.04)")
    p.add_argument("--methods", default="nelder-mead,gradient", help="fit methods (comma-separated)")
    p.add_argument("--no-predict", action="store_true", help="skip the ML prediction")
    p.add_argument("--temperature", type=float, help="with --input: sample temperature, K (overrides the files')")
    p.add_argument("--samples", type=int, default=10000, help="latent draws per spectrum for the prediction "
                                                             "(default 10000)")
    p.add_argument("--quick", action="store_true", help="one temperature (300 K) and 500 latent draws (for tests)")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args: argparse.Namespace) -> int:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in ("nelder-mead", "gradient")]
    if bad or not methods:
        raise ValueError(f"--methods takes nelder-mead and/or gradient, got {args.methods!r}")
    if args.temperature is not None and not args.input:
        raise ValueError("--temperature applies to --input files; the demo's own data carry their temperature")
    kw = {"temperatures": (300.0,), "n_samples": min(args.samples, 500)} if args.quick else {"n_samples": args.samples}
    run_demo(args.output_dir, inputs=args.input, noise=args.noise, seed=args.seed, methods=methods,
             predict=not args.no_predict, temperature=args.temperature, **kw)
    return 0
