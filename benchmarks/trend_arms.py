"""Continue a bundle's physics stage with or without the temperature-invariance penalty (issue 16, item 5).

A reduced, equal-cost comparison for a loaded machine: the bundle's autoencoder and regressor are kept, and the
regressor gets ``--steps`` more steps of the simulator-consistency stage on a labelled simulated set (the
shipped recipe's ``physics`` stage: all layers, lr 3e-5, background slope profiled, batches of neighbouring
temperatures), with ``--invariance W`` (``PipelineConfig.temperature_invariance``; 0 = the control arm).
No measured spectrum is used. Score the output with ``benchmarks/ml_series.py`` and ``benchmarks/adapt.py``.

Run: ``PYTHONPATH=. python benchmarks/trend_arms.py --data SET.h5 --output OUT [--model BUNDLE] [--steps 20]
[--invariance 1.0]``.
"""
from __future__ import annotations

import argparse
import copy
import time

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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    main()
