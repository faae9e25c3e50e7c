"""Benchmark of ``phonon-ml train``: train with the command's defaults (or overrides) on a simulated set and report
wall and CPU times per stage and R² per named target on a held-out set.

    phonon-ml simulate --count 8000 --seed 0 --output set8k.h5
    phonon-ml simulate --count 1000 --seed 1 --output test1k.h5
    python benchmarks/train.py --data set8k.h5 --test-data test1k.h5                 # the defaults
    python benchmarks/train.py --data set8k.h5 --test-data test1k.h5 --set epochs=200 --set patience=20

Any material: the sets record it (``simulate --material M``). Not run by the test suite.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.bundle import bundle_from_training
from phonon_ml_core.learn.metrics import r2_score
from phonon_ml_core.learn.pipeline import train_pipeline
from phonon_ml_core.learn.setup import pipeline_config, read_training_set, training_defaults


def _option(text: str) -> tuple[str, object]:
    """NAME=VALUE with VALUE parsed as JSON when possible (numbers, true/false, null), else a string."""
    name, _, value = text.partition("=")
    if name not in training_defaults():
        raise argparse.ArgumentTypeError(f"unknown option {name!r}; known: {', '.join(training_defaults())}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training set (HDF5, `phonon-ml simulate --count N`)")
    ap.add_argument("--test-data", required=True, help="held-out set (HDF5, another seed)")
    ap.add_argument("--set", type=_option, action="append", default=[], metavar="NAME=VALUE",
                    help="override a `phonon-ml train` default (argparse name, e.g. epochs=200)")
    ap.add_argument("--n-samples", type=int, default=1000, help="latent samples per test spectrum")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    options = dict(args.set)
    cfg = pipeline_config(options)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    train = read_training_set(args.data)
    result = train_pipeline(train, cfg, progress=False, on_epoch=lambda r: print(json.dumps(r), flush=True))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    bundle = bundle_from_training(result, train.grid)
    test = Spectrum.from_hdf5(args.test_data)
    pred = bundle.predict(test, n_samples=args.n_samples, seed=0)
    y = np.asarray(test.force_constants)
    names = bundle.names
    figures = {
        "options": options, "n_train": train.n_spectra, "n_test": test.n_spectra, "threads": torch.get_num_threads(),
        "material": bundle.material.name, "wall_seconds": wall, "cpu_seconds": cpu, "seconds": result.seconds,
        "epochs": {s: sum(1 for r in result.history if r["stage"] == s) for s in result.seconds},
        "test_r2_mean_code": dict(zip(names, r2_score(y, pred["mean_code_prediction"]).round(4).tolist())),
        "test_r2_sampled_mean": dict(zip(names, r2_score(y, pred["mean"]).round(4).tolist())),
        "validation": result.metrics.get("validation"),
    }
    print(f"train: {wall:.0f} s wall, {cpu:.0f} s CPU; " + ", ".join(
        f"{k} {v:.0f} s ({figures['epochs'][k]} epochs)" for k, v in result.seconds.items()))
    print("held-out R² (mean code): " + ", ".join(f"{k} {v:.3f}" for k, v in figures["test_r2_mean_code"].items()))
    print("held-out R² (sampled):   " + ", ".join(f"{k} {v:.3f}" for k, v in figures["test_r2_sampled_mean"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
