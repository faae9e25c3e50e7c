"""Bundles between the measured temperatures (issue 16, item 5): semi-measured spectra at temperatures we have no
data for, with the measured model error.

The five shared ARCS aluminium spectra are fitted as one series (four shells, priors on shells 3–4, γ and the
background slope per spectrum, constants linear in T: ``phonon-ml fit --joint --shells 4 --prior added``). Each
fit leaves a residual field r(T) = measured − model. At an interior temperature T* between measured T1 < T2 the
probe spectrum is the series model's spectrum at T* (constants from the linear series, γ interpolated) plus
(1 − w)·r(T1) + w·r(T2), rescaled to the interpolated residual norm, then mean-normalised: the measured kind of
model error and noise, and a truth that falls with T by construction. Each bundle then predicts the seven-or-more
spectrum series (measured and probe, in order of T); the table gives 1XX and NMSE (best background slope) per T
and whether 1XX falls across the whole series. No model is trained; no spectrum of the probe is selected.

Run: ``PYTHONPATH=. python benchmarks/interior_temperatures.py [--models B1,B2] [--at 150,450] [--samples 1000]``
(default: the shipped default bundle and the four-shell ensemble; ≈ 1 min on 2 cores).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.joint import fit_joint
from phonon_ml_core.fitting.priors import reference_prior
from phonon_ml_core.fitting.residual_background import profiled_nmse
from phonon_ml_core.prediction.predict import predict_spectra, resolve_bundle
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.specs import ALUMINIUM

from adapt import DATA, shared_spectra  # benchmarks/adapt.py, beside this script

MODELS = "al_arcs_ei50_fcvae,al_arcs_ei50_fcvae4_ensemble"


def probe_spectra(measured: list[Spectrum], at: list[float]) -> tuple[list[Spectrum], np.ndarray]:
    """Semi-measured spectra at the temperatures ``at`` (K, inside the measured range) and the series model's
    1XX there (N/m)."""
    al4 = ALUMINIUM.with_shells(4)
    joint = fit_joint(measured, material=al4, prior=reference_prior(al4, "added"), uncertainty=False)
    grid = measured[0].grid
    sim = get_simulator(al4, None, grid=grid, dtype=torch.float64)
    t_meas = np.array([float(s.temperature) for s in measured])
    gammas = np.array([e["linewidth"] for e in joint.entries])
    residuals = []
    for s, fc, g in zip(measured, joint.force_constants, gammas):
        with torch.no_grad():
            y = sim(fc[None], float(s.temperature), linewidth=float(g))[0].numpy()
        residuals.append(s.intensity - profiled_nmse(s.intensity, y, grid)[2])
    fc_at, _ = joint.constants_at(np.asarray(at, float))
    probes = []
    for t, fc in zip(at, fc_at):
        k = int(np.searchsorted(t_meas, t))
        if not 0 < k < len(t_meas):
            raise SystemExit(f"--at {t:g} K is outside the measured range {t_meas[0]:g}–{t_meas[-1]:g} K")
        w = (t - t_meas[k - 1]) / (t_meas[k] - t_meas[k - 1])
        mix = (1 - w) * residuals[k - 1] + w * residuals[k]
        norm = np.sqrt((1 - w) * np.nansum(residuals[k - 1] ** 2) + w * np.nansum(residuals[k] ** 2))
        gamma = float(np.interp(t, t_meas, gammas))
        with torch.no_grad():
            y = sim(fc[None], float(t), linewidth=gamma)[0].numpy()
        x = mean_normalize(y + mix * norm / np.sqrt(np.nansum(mix ** 2)), grid.mask)
        probes.append(Spectrum(intensity=np.asarray(x, float), grid=grid, temperature=float(t), quantity="chi''",
                               normalization="mean", material=ALUMINIUM, metadata={"probe": "semi-measured"}))
    return probes, fc_at[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=MODELS, help="comma-separated bundles (paths or shipped names)")
    ap.add_argument("--at", default="150,450", help="probe temperatures, K, comma-separated")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    measured = shared_spectra(args.data)
    at = [float(t) for t in args.at.split(",")]
    probes, truth = probe_spectra(measured, at)
    series = sorted(measured + probes, key=lambda s: float(s.temperature))
    labels = [f"{s.temperature:.0f}" + ("*" if s.metadata.get("probe") else "") for s in series]
    print(f"probe temperatures (*): {', '.join(f'{t:g}' for t in at)} K; series-model 1XX there "
          f"{', '.join(f'{v:.2f}' for v in truth)} N/m")
    print("| bundle | " + " | ".join(f"{lab} K" for lab in labels) + " | mean NMSE (raw) | probes' NMSE | 1XX falls |")
    print("|---" * (len(labels) + 4) + "|")
    for name in args.models.split(","):
        entries = predict_spectra(resolve_bundle(name), series, n_samples=args.samples)
        x = np.array([e["force_constants"][0] for e in entries])
        n = np.array([e["nmse_background_slope"] for e in entries])
        raw = np.array([e["nmse"] for e in entries])
        probe = np.array([bool(s.metadata.get("probe")) for s in series])
        cells = [f"{a:.2f} ({b:.3f})" for a, b in zip(x, n)]
        print(f"| {name} | " + " | ".join(cells) + f" | {n.mean():.4f} ({raw.mean():.4f}) | {n[probe].mean():.4f} | "
              f"{'↓' if np.all(np.diff(x) < 0) else '✗'} |")
    print("cells: 1XX N/m (NMSE with the best background slope)")


if __name__ == "__main__":
    main()
