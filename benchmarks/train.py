"""Benchmark of the two-stage method: simulate (or load) spectra, pretrain an autoencoder, train the
regressor, report wall times and R² per force constant on a held-out set.

    python benchmarks/train.py                       # 8000 train + 1000 test, FCVAE, latent 30
    python benchmarks/train.py --n-train 800 --n-test 200 --epochs 20 --regressor-epochs 100
    python benchmarks/train.py --data train.h5 --test-data test.h5 --family cnnvae

Not run by the test suite.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from phonon_ml_core.physics.units import AL_REFERENCE_FC, FORCE_CONSTANT_NAMES
from phonon_ml_core.data.grid import standard_grid
from phonon_ml_core.learn.networks import FAMILIES
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.training import PipelineConfig, StageConfig, r2_score, study_stage_config, train_pipeline


def simulate(n: int, seed: int, temperature: float, batch: int = 200) -> Spectrum:
    """``n`` stable spectra with the study's sampling rule (conventions §1), unstable draws redrawn."""
    from phonon_ml_core.simulator.powder import PowderSimulator

    sim = PowderSimulator()
    rng = np.random.default_rng(seed)
    lo, hi = np.sort(np.stack([AL_REFERENCE_FC * 0.5, AL_REFERENCE_FC * 1.5]), axis=0)
    lo[4], hi[4] = -1.0, 1.0
    xs, fcs, have = [], [], 0
    while have < n:
        fc = rng.uniform(lo, hi, (batch, 5))
        with torch.no_grad():
            x = sim(torch.as_tensor(fc, dtype=torch.float32), temperature, allow_unstable=True).numpy()
        ok = np.isfinite(x[:, sim.grid.mask]).all(-1)
        xs.append(x[ok])
        fcs.append(fc[ok])
        have += int(ok.sum())
    x, fc = np.concatenate(xs)[:n], np.concatenate(fcs)[:n]
    return Spectrum(intensity=x, grid=sim.grid, temperature=temperature, normalization="mean", force_constants=fc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="training set (HDF5); default: simulate --n-train spectra")
    ap.add_argument("--test-data", help="held-out set (HDF5); default: simulate --n-test spectra")
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=300.0, help="K, for simulated sets")
    ap.add_argument("--family", default="fcvae", choices=FAMILIES)
    ap.add_argument("--latent-dim", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--regressor-epochs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    ap.add_argument("--regressor-codes", default="sample", choices=("sample", "mean"))
    ap.add_argument("--n-samples", type=int, default=1000, help="latent samples per test spectrum")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    train = Spectrum.from_hdf5(args.data) if args.data else simulate(args.n_train, args.seed, args.temperature)
    test = Spectrum.from_hdf5(args.test_data) if args.test_data else simulate(args.n_test, args.seed + 10_000,
                                                                               args.temperature)
    t_data = time.perf_counter() - t0
    make = study_stage_config if args.optimizer == "sgd" else StageConfig
    cfg = PipelineConfig(family=args.family, latent_dim=args.latent_dim, seed=args.seed,
                         pretrain=make(epochs=args.epochs, batch_size=args.batch_size),
                         regressor=make(epochs=args.regressor_epochs, batch_size=128),
                         regressor_codes=args.regressor_codes)
    result = train_pipeline(train, cfg, progress=True)

    from phonon_ml_core.learn.bundle import bundle_from_training
    bundle = bundle_from_training(result, standard_grid())
    t1 = time.perf_counter()
    pred = bundle.predict(test, n_samples=args.n_samples, seed=0)
    t_pred = time.perf_counter() - t1
    y = np.asarray(test.force_constants)
    r2_mean_code = r2_score(y, pred["mean_code_prediction"])
    r2_sampled = r2_score(y, pred["mean"])
    figures = {
        "family": args.family, "latent_dim": args.latent_dim, "n_train": train.n_spectra, "n_test": test.n_spectra,
        "threads": torch.get_num_threads(), "seconds": {"data": t_data, **result.seconds, "predict": t_pred},
        "epochs": {s: sum(1 for r in result.history if r["stage"] == s) for s in ("pretrain", "regressor")},
        "test_r2_mean_code": dict(zip(FORCE_CONSTANT_NAMES, r2_mean_code.round(4).tolist())),
        "test_r2_sampled_mean": dict(zip(FORCE_CONSTANT_NAMES, r2_sampled.round(4).tolist())),
        "test_mean_std_n_per_m": dict(zip(FORCE_CONSTANT_NAMES, pred["std"].mean(0).round(4).tolist())),
        "validation": result.metrics.get("validation"),
    }
    print(f"data {t_data:.1f} s; " + ", ".join(f"{k} {v:.1f} s" for k, v in figures["seconds"].items() if k != "data"))
    print("held-out R² (mean code): " + ", ".join(f"{k} {v:.3f}" for k, v in figures["test_r2_mean_code"].items()))
    print("held-out R² (sampled):   " + ", ".join(f"{k} {v:.3f}" for k, v in figures["test_r2_sampled_mean"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
