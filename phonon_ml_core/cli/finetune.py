"""`phonon-ml finetune`: adapt a model bundle to measured spectra through the simulator (no simulated data)."""
from __future__ import annotations

import argparse
from pathlib import Path

from phonon_ml_core.cli.choices import TRAINABLE_LAYERS
from phonon_ml_core.cli.options import add_bundle_output_options
from phonon_ml_core.data.fileio import check_bundle_output


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("finetune", help="adapt a model bundle to measured spectra (regressor through the simulator)",
                       description="Fine-tune the regressor of a bundle so that the spectra simulated from its "
                                   "predictions match the given measured spectra (autoencoder frozen; needs only "
                                   "the measured spectra and their temperatures). Writes a new bundle.")
    p.add_argument("--model", help="model bundle to start from: a folder or a shipped bundle's name "
                   "(default: the bundle shipped in models/)")
    p.add_argument("--input", "-i", nargs="+", required=True,
                   help="measured spectra on the bundle's grid (.h5), or sets simulated with more shells than the "
                        "bundle's model (`phonon-ml simulate --shells N --count M`): model-error adaptation")
    p.add_argument("--output", "-o", required=True, help="the adapted bundle (a directory)")
    p.add_argument("--temperature", type=float, help="override the temperature in the input files, K")
    p.add_argument("--steps", type=int, default=100, help="Adam steps (default 100)")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate (default 3e-4)")
    p.add_argument("--layers", choices=TRAINABLE_LAYERS, default="last",
                   help="regressor layers to train (default: the output layer only, which generalises best; "
                        "bias: its bias only, a constant offset that keeps the trend in temperature)")
    p.add_argument("--no-background", dest="background", action="store_false",
                   help="compare without the profiled residual background slope that the fits use")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (checkpoint in OUTPUT.checkpoints)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_bundle_output_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.learn.adaptation import adapt_to_file
    from phonon_ml_core.prediction.predict import read_inputs_on_grid, resolve_bundle

    out = check_bundle_output(args.output, args.overwrite)
    bundle = resolve_bundle(args.model)
    spectra, _ = read_inputs_on_grid(args.input, bundle.grid, args.temperature)
    adapted = adapt_to_file(bundle, spectra, out, overwrite=args.overwrite,
                            weights_dtype=args.weights_dtype, resume=args.resume, steps=args.steps, lr=args.lr,
                            seed=args.seed, progress=not args.no_progress, trainable=args.layers,
                            background=args.background, sources=[str(Path(p).resolve()) for p in args.input])
    a = adapted.metadata["adaptation"][-1]
    print(f"simulator-consistency loss (mean NMSE) {a['loss_first']:.4f} → {a['loss_last']:.4f} on "
          f"{a['n_spectra']} spectra in {a['seconds']:.0f} s")
    print(f"wrote {out}")
    return 0
