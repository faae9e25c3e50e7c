"""Compare background estimators by the downstream fit NMSE on the real aluminium spectra.

    python benchmarks/background.py [--methods polynomial,percentile,minimum,low_region,none]

The shared spectra are already background-subtracted; each estimator is applied once more on top (what a
user re-running preprocessing with that estimator would get on residual background), the spectrum is
re-normalised, and a gradient fit with a free linewidth reports the NMSE. The estimator that removes real
background without eating the phonon signal gives the lowest NMSE.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.preprocess.background import estimate_background, subtract_background

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="none,polynomial,percentile,minimum,low_region")
    args = ap.parse_args()
    files = sorted(DATA.glob("al_*K.h5"), key=lambda p: int(p.stem.split("_")[1][:-1]))
    if not files:
        raise SystemExit(f"no real spectra in {DATA}")
    methods = args.methods.split(",")
    table = {m: [] for m in methods}
    temps = []
    for path in files:
        s = Spectrum.from_hdf5(path)
        temps.append(s.temperature)
        for m in methods:
            x = np.where(s.mask, s.intensity, np.nan)
            if m != "none":
                x = subtract_background(x, estimate_background(x, s.mask, s.grid.energy, method=m))
            one = replace(s, intensity=x, normalization="none").normalized()
            t0 = time.perf_counter()
            r = fit_spectrum(one, method="gradient", fit_linewidth=True, fit_background=False, uncertainty=False)
            table[m].append(r.nmse)
            print(f"{s.temperature:5.0f} K  {m:12s} NMSE {r.nmse:.4f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    print("\nestimator     " + "  ".join(f"{t:6.0f}K" for t in temps) + "    mean")
    for m in methods:
        print(f"{m:12s}  " + "  ".join(f"{v:7.4f}" for v in table[m]) + f"  {np.mean(table[m]):7.4f}")


if __name__ == "__main__":
    main()
