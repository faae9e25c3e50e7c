"""Continue a bundle's physics stage with or without the temperature-invariance penalty (issue 16, item 5).

A reduced, equal-cost comparison for a loaded machine: the bundle's autoencoder and regressor are kept, and the
regressor gets ``--steps`` more steps of the simulator-consistency stage on a labelled simulated set (the
shipped recipe's ``physics`` stage: all layers, lr 3e-5, background slope profiled, batches of neighbouring
temperatures), with ``--invariance W`` (``PipelineConfig.temperature_invariance``; 0 = the control arm).
No measured spectrum is used. Score the output with ``benchmarks/ml_series.py`` and ``benchmarks/adapt.py``.

Run: ``PYTHONPATH=. python benchmarks/trend_arms.py --data SET.h5 --output OUT [--model BUNDLE] [--steps 20]
[--invariance 1.0]``.

``--recipe`` instead trains a whole bundle from ``--data`` with the shipped bundle's recipe (models/README.md:
fcvae, latent 10, 60 epochs, regressor 200 epochs, 150 physics steps, seed 0, float16 weights) plus
``--regressor-temperature`` and ``--latent-invariance W`` (``PipelineConfig.latent_temperature_invariance``: the
feature extractor's penalty in pretraining) — the full-size arms of models/README.md. ``--reuse-extractor BUNDLE``
keeps that bundle's feature extractor and trains only the regressor stages (valid for an arm whose autoencoder
stages equal that bundle's: same data, seed and settings, no latent penalty).
"""
from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from phonon_ml_core.learn.bundle import Bundle
from phonon_ml_core.learn.consistency import (TemperatureInvariance, consistency_loss, consistency_simulator,
                                              consistency_stage, temperature_window_source)
from phonon_ml_core.learn.inputs import spectra_tensor
from phonon_ml_core.learn.losses import encode_all
from phonon_ml_core.learn.loop import fit
from phonon_ml_core.learn.targets import training_targets
from phonon_ml_core.prediction.predict import resolve_bundle
from phonon_ml_core.readers import read_spectrum


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--invariance", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--recipe", action="store_true", help="train a whole bundle with the shipped recipe (above)")
    ap.add_argument("--regressor-temperature", action="store_true")
    ap.add_argument("--latent-invariance", type=float, default=0.0)
    ap.add_argument("--reuse-extractor", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.recipe:
        return train_recipe(args)
    bundle = resolve_bundle(args.model)
    data = read_spectrum(args.data)
    bundle.check_data(data, "the simulated set")
    x, keep = spectra_tensor(data, bundle.grid, "simulated set")
    targets, y = training_targets(data, bundle.material, keep, bundle.targets.linewidth)
    if targets != bundle.targets:
        raise SystemExit(f"the set's targets {targets.names} differ from the bundle's {bundle.targets.names}")
    temps = data.temperatures()[keep]
    ae = copy.deepcopy(bundle.autoencoder).eval()
    mu = encode_all(ae, x)[0]
    sim = consistency_simulator(bundle.grid, data.quantity, data.metadata, bundle.material, bundle.experiment)
    reg = copy.deepcopy(bundle.regressor)
    cfg = consistency_stage(reg, args.steps, args.batch, args.lr, "all")
    inv = (TemperatureInvariance(args.invariance, sim, ae, targets, (float(temps.min()), float(temps.max())))
           if args.invariance > 0 else None)
    t0 = time.perf_counter()
    res = fit(reg, consistency_loss(sim, bundle.target_mean, bundle.target_std, targets, True, inv),
              temperature_window_source(mu, x, temps, args.batch, args.seed + 5, None if inv is None else y),
              None, cfg, args.lr, stage="physics", seed=args.seed, progress=False)
    seconds = time.perf_counter() - t0
    reg.eval()
    for p in reg.parameters():
        p.requires_grad_(False)
    meta = copy.deepcopy(bundle.metadata)
    meta.pop("weights_sha256", None)
    meta.setdefault("adaptation", []).append({
        "method": "continued physics stage on simulated spectra (benchmarks/trend_arms.py)",
        "steps": args.steps, "lr": args.lr, "batch": args.batch, "temperature_invariance": args.invariance,
        "data": str(args.data), "n_spectra": int(x.shape[0]), "seconds": seconds,
        "loss_first": res.history[0]["train_loss"], "loss_last": res.history[-1]["train_loss"]})
    Bundle(autoencoder=ae, regressor=reg, grid=bundle.grid, target_mean=bundle.target_mean.copy(),
           target_std=bundle.target_std.copy(), metadata=meta).save(args.output, overwrite=True)
    h = res.history
    print(f"{args.output}: {args.steps} steps, invariance {args.invariance:g}, {seconds:.0f} s (loaded machine); "
          f"loss {h[0]['train_loss']:.4f} → {h[-1]['train_loss']:.4f}; "
          + (f"invariance {np.mean([r['train_invariance'] for r in h[:3]]):.4f} → "
             f"{np.mean([r['train_invariance'] for r in h[-3:]]):.4f}" if inv is not None else ""))


#: The shipped bundle's training options (models/README.md, ``al_arcs_ei50_fcvae``).
SHIPPED_RECIPE = {"family": "fcvae", "latent_dim": 10, "epochs": 60, "regressor_epochs": 200, "physics_steps": 150,
                  "seed": 0}


def train_recipe(args: argparse.Namespace) -> None:
    """A whole bundle from ``args.data`` with :data:`SHIPPED_RECIPE` + the arm's options, saved to ``args.output``."""
    from phonon_ml_core.learn.bundle import bundle_from_training
    from phonon_ml_core.learn.bundle_metadata import file_info
    from phonon_ml_core.learn.pipeline import train_pipeline
    from phonon_ml_core.learn.setup import pipeline_config, read_training_set

    cfg = replace(pipeline_config({**SHIPPED_RECIPE, "regressor_temperature": args.regressor_temperature}),
                  latent_temperature_invariance=args.latent_invariance)
    simulated = read_training_set(args.data)
    ae = None
    if args.reuse_extractor:
        if args.latent_invariance > 0:
            raise SystemExit("--reuse-extractor keeps a trained extractor: the latent penalty would not act")
        ae = copy.deepcopy(resolve_bundle(args.reuse_extractor).autoencoder)
    work = Path(args.output + ".work")
    t0 = time.perf_counter()

    def show(rec: dict) -> None:
        if rec["epoch"] % 10 == 0 or rec["epoch"] == 1:
            extra = {k: round(v, 6) for k, v in rec.items() if k.startswith(("train_", "val_"))}
            print(f"[{time.perf_counter() - t0:6.0f} s] {rec['stage']} {rec['epoch']}: {extra}", flush=True)
    res = train_pipeline(simulated, cfg, workdir=work, progress=False, on_epoch=show, autoencoder=ae)
    ranges = simulated.metadata.get("sampling_ranges") or simulated.metadata.get("sampling")
    meta = {"simulated": {**file_info(args.data), "n_spectra": simulated.n_spectra, "metadata": simulated.metadata},
            "finetune": [], "processes": 1, "recipe": "benchmarks/trend_arms.py --recipe",
            "reused_extractor": args.reuse_extractor}
    bundle = bundle_from_training(res, simulated.grid, data=meta, sampling_ranges=ranges if isinstance(ranges, dict)
                                  else None, quantity=simulated.quantity)
    bundle.save(args.output, overwrite=True, weights_dtype="float16",
                extra_files={name: work / name for name in ("training_log.jsonl", "loss_curve.png")})
    m = res.metrics.get("validation") or res.metrics.get("train", {})
    print(f"{args.output}: {time.perf_counter() - t0:.0f} s (loaded machine), stages {res.seconds}; validation R² "
          + ", ".join(f"{k} {v:.3f}" for k, v in m.get("r2", {}).items() if v is not None), flush=True)


if __name__ == "__main__":
    main()
