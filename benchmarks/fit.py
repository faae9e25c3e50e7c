"""Fits of the real ARCS aluminium spectra: NMSE, seconds and simulator calls per fit, 1XX vs T.

Run: ``python benchmarks/fit.py [--temperatures 50,640] [--methods nelder-mead,gradient] [--fit-background]
[--json OUT.json]``.
Targets (docs/fitting.md): Nelder–Mead ≤ 60 s per spectrum; gradient ≤ 15 s per spectrum and no worse NMSE than
Nelder–Mead; mean NMSE ≤ 0.19 (with the linewidth free).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.results import msq_combination
from phonon_ml_core.simulator.factory import get_simulator

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--temperatures", default="50,280,350,540,640")
    ap.add_argument("--methods", default="nelder-mead,gradient")
    ap.add_argument("--linewidth", default="fixed,free", help="fixed (no intrinsic linewidth), free, or both")
    ap.add_argument("--fit-background", action="store_true",
                    help="also profile out a residual background linear in energy transfer (fit_background=True)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    temps = [int(t) for t in args.temperatures.split(",")]
    spectra = {t: Spectrum.from_hdf5(Path(args.data) / f"al_{t}K.h5") for t in temps}
    t0 = time.perf_counter()
    get_simulator(grid=spectra[temps[0]].grid)
    print(f"simulator built in {time.perf_counter() - t0:.1f} s (not counted below); torch threads "
          f"{torch.get_num_threads()}")
    rows = []
    for lw in args.linewidth.split(","):
        for method in args.methods.split(","):
            for t in temps:
                r = fit_spectrum(spectra[t], method=method, fit_linewidth=(lw == "free"),
                                 fit_background=args.fit_background)
                rows.append({**r.to_dict(), "T": t, "method": method, "gamma": lw})
                print(f"{method:12s} γ {lw:5s} T={t:4d} K  NMSE {r.nmse:.4f}  {r.seconds:6.1f} s  "
                      f"{r.evaluations:4d} calls ({r.spectra_simulated} spectra)  conv={r.converged}  "
                      f"fc={np.round(r.force_constants, 2).tolist()} ± {np.round(r.std, 2).tolist()}  "
                      f"γ={'' if r.linewidth is None else round(r.linewidth, 4)}"
                      + ("" if r.background is None else
                         f"  b1={r.background[1]:.5f}±{r.background_std[1]:.5f} /meV"), flush=True)
    print(f"\nsummary (mean over temperatures){'; background fitted' if args.fit_background else ''}")
    print(f"{'method':12s} {'γ':5s} " + " ".join(f"{t:>7d}K" for t in temps) + "    mean  s/fit  calls/fit")
    for lw in args.linewidth.split(","):
        for method in args.methods.split(","):
            sel = [r for r in rows if r["method"] == method and r["gamma"] == lw]
            print(f"{method:12s} {lw:5s} " + " ".join(f"{r['nmse']:8.4f}" for r in sel)
                  + f"  {np.mean([r['nmse'] for r in sel]):.4f}  {np.mean([r['seconds'] for r in sel]):5.1f}"
                  f"  {np.mean([r['evaluations'] for r in sel]):7.1f}")
    print("\nfitted 1XX (N/m) and M<w2> combination vs T")
    for lw in args.linewidth.split(","):
        for method in args.methods.split(","):
            sel = [r for r in rows if r["method"] == method and r["gamma"] == lw]
            print(f"{method:12s} {lw:5s} 1XX: " + " ".join(f"{r['force_constants'][0]:6.2f}±{r['std'][0] or 0:.2f}"
                                                             for r in sel)
                  + " | M<w2>: " + " ".join(f"{msq_combination(np.array(r['force_constants'])):6.1f}" for r in sel))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
