"""Adapting a bundle to the real ARCS spectra (``phonon-ml finetune``): fitted vs held-out NMSE, 1XX vs T.

For each setting (layers, learning rate, steps) the bundle's regressor is fine-tuned through the simulator
on all measured spectra (``transductive``: scored on the spectra it was adapted to, as the study scores its
fine-tuned models) and, once per spectrum, on all the others (``left out``: scored on the unseen one).

Run: ``python benchmarks/adapt.py [--model BUNDLE] [--settings last:3e-4:100,last:3e-4:100:nobg] [--samples 1000]``
(default bundle: the shipped one; data: ../shared/data/al_arcs_ei50). A setting is layers:lr:steps, with
``:nobg`` to adapt without the profiled background slope (``phonon-ml finetune --no-background``). Prints one
table row per setting; NMSE with the best residual background slope added (the fits' nuisance model), the
mean without it in brackets.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from phonon_ml_core.learn.adaptation import finetune_bundle
from phonon_ml_core.prediction.predict import predict_spectra, resolve_bundle
from phonon_ml_core.data.spectrum import Spectrum

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"
TEMPERATURES = (50, 280, 350, 540, 640)


def shared_spectra(data: str | Path = DATA) -> list[Spectrum]:
    """The shared ARCS aluminium spectra at :data:`TEMPERATURES` (SystemExit when they are absent)."""
    files = [Path(data) / f"al_{t}K.h5" for t in TEMPERATURES]
    if not all(f.exists() for f in files):
        raise SystemExit(f"the shared spectra are not in {data}")
    return [Spectrum.from_hdf5(f) for f in files]


def bundle_and_spectra(ap: argparse.ArgumentParser, samples: int, threads: int, model: str | None = None):
    """Add the options every shared-spectra benchmark takes (--model, --data, --samples, --threads) to ``ap``,
    parse them, set torch's threads and return (args, the shared spectra, the bundle). ``model``: the default
    --model (None: the shipped default bundle)."""
    ap.add_argument("--model", default=model, help=f"bundle (default: {model or 'the shipped one'})")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--samples", type=int, default=samples)
    ap.add_argument("--threads", type=int, default=threads)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    return args, shared_spectra(args.data), resolve_bundle(args.model)


def _score(bundle, spectra, samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    entries = predict_spectra(bundle, spectra, n_samples=samples)
    return (np.array([e["nmse_background_slope"] for e in entries]),
            np.array([e["force_constants"][0] for e in entries]),
            np.array([e["nmse"] for e in entries]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--settings", default="none,last:3e-4:100,last:1e-3:100,all:3e-5:100,all:3e-5:150",
                    help="comma-separated layers:lr:steps ('none' = the bundle as it is)")
    args, spectra, bundle = bundle_and_spectra(ap, samples=1000, threads=1)
    print("| setting | transductive NMSE per T | mean | 1XX (N/m) | left-out NMSE per T | mean | left-out 1XX | s |")
    print("|---|---|---|---|---|---|---|---|")
    for setting in args.settings.split(","):
        t0 = time.perf_counter()
        if setting == "none":
            n, x, raw = _score(bundle, spectra, args.samples)
            lo_n, lo_x, lo_raw = n, x, raw
        else:
            layers, lr, steps, *flag = setting.split(":")
            if flag not in ([], ["nobg"]):
                raise SystemExit(f"setting {setting!r}: the only flag after layers:lr:steps is ':nobg'")

            def adapt(idx, steps=int(steps), lr=float(lr), layers=layers, background=flag != ["nobg"]):
                return finetune_bundle(bundle, Spectrum.stack([spectra[i] for i in idx]), steps=steps, lr=lr,
                                       trainable=layers, progress=False, background=background)
            n, x, raw = _score(adapt(range(len(spectra))), spectra, args.samples)
            lo = [_score(adapt([i for i in range(len(spectra)) if i != k]), [spectra[k]], args.samples)
                  for k in range(len(spectra))]
            lo_n, lo_x, lo_raw = (np.concatenate([a[j] for a in lo]) for j in range(3))
        fmt = lambda v, d=3: " / ".join(f"{u:.{d}f}" for u in v)  # noqa: E731
        print(f"| {setting} | {fmt(n)} | {n.mean():.4f} ({raw.mean():.4f}) | {fmt(x, 2)} | {fmt(lo_n)} | "
              f"{lo_n.mean():.4f} ({lo_raw.mean():.4f}) | "
              f"{fmt(lo_x, 2)} | {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
