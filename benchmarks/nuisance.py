"""Each addition of the richer nuisance model (issue 16, item 3) measured alone on the real ARCS aluminium spectra.

Configurations (all with the residual background slope profiled and the linewidth free, as benchmarks/fit.py
``--linewidth free --fit-background``): ``base`` (HWHM = γ·E, two shells), ``affine`` (HWHM = γ0 + γ·E),
``prior2`` (two shells, reference priors on all constants), ``shells3`` (three shells, no prior), ``shells3-prior``
(three shells, priors on the added shell), ``affine-shells3-prior``, ``shells4-prior``. Prints NMSE per temperature,
the mean, seconds per fit, 1XX and 2XX per temperature, and the ratio of the time per fit to one simulator call
(machine load cancels).

Run: ``PYTHONPATH=. python benchmarks/nuisance.py [--configs base,affine] [--method gradient] [--threads 1]
[--json OUT.json] [--residuals OUT.npz]``. Target (issue 16): mean NMSE ≤ 0.17.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.priors import reference_prior
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.specs import ALUMINIUM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"
#: name → (linewidth model, shells, prior scope or None)
CONFIGS = {"base": ("proportional", 2, None), "affine": ("affine", 2, None), "prior2": ("proportional", 2, "all"),
           "shells3": ("proportional", 3, None), "shells3-prior": ("proportional", 3, "added"),
           "affine-shells3-prior": ("affine", 3, "added"), "shells4-prior": ("proportional", 4, "added")}


def call_seconds(material, grid, repeats: int = 3) -> float:
    """Seconds of one simulator call with a linewidth (the unit the fit times are compared with)."""
    sim = get_simulator(material, grid=grid)
    fc = torch.as_tensor(material.reference_constants, dtype=sim.dtype)[None]
    sim(fc, 300.0, linewidth=torch.tensor([0.03], dtype=sim.dtype))
    t0 = time.perf_counter()
    for _ in range(repeats):
        sim(fc, 300.0, linewidth=torch.tensor([0.03], dtype=sim.dtype))
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--temperatures", default="50,280,350,540,640")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--method", default="gradient")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--residuals", default=None, help="npz of data − model maps per (config, T)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    temps = [int(t) for t in args.temperatures.split(",")]
    spectra = {t: Spectrum.from_hdf5(Path(args.data) / f"al_{t}K.h5") for t in temps}
    grid = spectra[temps[0]].grid
    rows, maps = [], {}
    for name in args.configs.split(","):
        lw_model, shells, scope = CONFIGS[name]
        material = ALUMINIUM.with_shells(shells)
        prior = None if scope is None else reference_prior(material, scope)
        unit = call_seconds(material, grid)
        for t in temps:
            r = fit_spectrum(spectra[t], method=args.method, fit_linewidth=True, fit_background=True,
                             material=material, linewidth_model=lw_model, prior=prior, threads=args.threads)
            off = r.simulated.metadata.get("linewidth_offset")
            rows.append({"config": name, "T": t, "nmse": r.nmse, "seconds": r.seconds, "call_seconds": unit,
                         "evaluations": r.evaluations, "names": list(material.names),
                         "force_constants": r.force_constants.tolist(), "std": r.std.tolist(),
                         "linewidth": r.linewidth, "linewidth_offset": off, "at_bounds": list(r.at_bounds)})
            maps[f"{name}_{t}"] = np.asarray(spectra[t].intensity, float) - np.asarray(r.simulated.intensity, float)
            print(f"{name:22s} T={t:4d} K NMSE {r.nmse:.4f} {r.seconds:6.1f} s ({r.seconds / unit:5.0f} calls-worth) "
                  f"γ={r.linewidth:.4f} γ0={'' if off is None else f'{off:.3f} meV'} "
                  f"fc={np.round(r.force_constants, 2).tolist()} bounds={list(r.at_bounds)}", flush=True)
    print(f"\nsummary ({args.method}, background and linewidth free; machine load: compare the ratios)")
    print(f"{'config':22s} " + " ".join(f"{t:>7d}K" for t in temps) + "    mean  s/fit  fit/call")
    for name in args.configs.split(","):
        sel = [r for r in rows if r["config"] == name]
        print(f"{name:22s} " + " ".join(f"{r['nmse']:8.4f}" for r in sel)
              + f"  {np.mean([r['nmse'] for r in sel]):.4f} {np.mean([r['seconds'] for r in sel]):6.1f}"
              f"  {np.mean([r['seconds'] / r['call_seconds'] for r in sel]):6.0f}")
    print("\n1XX and 2XX (N/m) vs T")
    for name in args.configs.split(","):
        sel = [r for r in rows if r["config"] == name]
        print(f"{name:22s} 1XX " + " ".join(f"{r['force_constants'][0]:6.2f}" for r in sel)
              + " | 2XX " + " ".join(f"{r['force_constants'][3]:6.2f}" for r in sel))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.residuals:
        np.savez_compressed(args.residuals, **maps)


if __name__ == "__main__":
    main()
