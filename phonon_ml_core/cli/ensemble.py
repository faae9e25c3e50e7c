"""``phonon-ml ensemble``: several trained bundles of one material, experiment and grid joined into one model.

A thin front end of :func:`phonon_ml_core.learn.ensemble.build_ensemble`: the members are loaded and checked
(weights, grid, material, experiment, targets) and written, each a complete bundle, into one ensemble folder
(atomically). ``predict``, ``finetune`` and the Mantid algorithms take the ensemble wherever they take a bundle.
"""
from __future__ import annotations

import argparse

from phonon_ml_core.cli.options import add_bundle_output_options


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("ensemble", help="join trained bundles into one averaged model (an ensemble)",
                       description="Join bundles trained for the same material, experiment, grid and targets (for "
                                   "example with different seeds or data) into one ensemble: its prediction is the "
                                   "members' mean, its std includes their spread (docs/training.md, Ensembles).")
    p.add_argument("--members", nargs="+", required=True, metavar="BUNDLE",
                   help="two or more bundle folders (an ensemble given here adds its members)")
    p.add_argument("--output", "-o", required=True, help="the ensemble folder to write")
    p.add_argument("--description", default=None, help="a line recorded in the ensemble's metadata.json")
    add_bundle_output_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.data.fileio import check_bundle_output
    from phonon_ml_core.learn.ensemble import build_ensemble

    out = check_bundle_output(args.output, args.overwrite)
    ens = build_ensemble(args.members, description=args.description)
    ens.save(out, overwrite=args.overwrite, weights_dtype=args.weights_dtype)
    print(f"wrote {out}: an ensemble of {len(ens.members)} {ens.material.name} bundles "
          f"({', '.join(ens.target_names)}), {ens.experiment.instrument} Ei = {ens.experiment.ei_mev:g} meV")
    return 0
