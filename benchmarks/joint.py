"""Joint fit of the shared aluminium temperature series against independent per-temperature fits.

python benchmarks/joint.py [--data DIR] [--models linear,quadratic,free] [--skip-independent] [--json OUT]
[--plot PNG] [--shells N] [--prior none|added|all] [--profile]

Prints NMSE per temperature and its mean, 1XX and the RMS frequency against T (and whether they fall
monotonically), seconds (wall and CPU: on a shared machine the CPU ratio is the steadier one) of the joint fit
against the N independent gradient fits (linewidth and background slope free in both), and the model-error
inflation of the joint fit's std. ``--shells``/``--prior``: the richer nuisance model of docs/fitting.md (more
shells with reference priors) in both the joint and the independent fits.
Targets (issue 16): joint mean NMSE within 0.01 of the independent mean; 1XX and RMS frequency monotonic; joint
faster than N separate fits.
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
from phonon_ml_core.fitting.joint import fit_joint
from phonon_ml_core.fitting.joint_result import rms_frequency_thz
from phonon_ml_core.fitting.priors import reference_prior
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.report.series_figure import series_figure
from phonon_ml_core.specs import ALUMINIUM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"


def monotonic_falling(t: np.ndarray, y: np.ndarray) -> bool:
    """y strictly decreasing with t."""
    o = np.argsort(t)
    return bool(np.all(np.diff(np.asarray(y)[o]) < 0))


def simulator_costs(material, spectrum: Spectrum, batches=(1, 6, 24, 75), repeats: int = 3) -> None:
    """Seconds per spectrum of one simulator call (no gradient) against the batch size, float64 and float32."""
    t = float(spectrum.temperatures()[0])
    torch.set_num_threads(1)  # as in the fits (fit_spectrum / fit_joint threads=1)
    for dtype in (torch.float64, torch.float32):
        sim = get_simulator(material, grid=spectrum.grid, quantity=spectrum.quantity, dtype=dtype)
        row = []
        for b in batches:
            fc = torch.as_tensor(np.tile(material.reference_constants, (b, 1)), dtype=dtype)
            args = (fc, torch.full((b,), t, dtype=dtype))
            with torch.no_grad():
                sim(*args, linewidth=torch.full((b,), 0.03, dtype=dtype), allow_unstable=True)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    sim(*args, linewidth=torch.full((b,), 0.03, dtype=dtype), allow_unstable=True)
            row.append(f"{b}: {1e3 * (time.perf_counter() - t0) / repeats / b:.1f}")
        print(f"simulator {str(dtype)[6:]}, ms per spectrum by batch size: " + ", ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--models", default="linear")
    ap.add_argument("--skip-independent", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    ap.add_argument("--shells", type=int, default=None, help="neighbour shells (default: the material's)")
    ap.add_argument("--prior", default="none", help="none, added or all (fitting.priors.reference_prior)")
    ap.add_argument("--profile", action="store_true",
                    help="also print the simulator's cost per spectrum against batch size and precision")
    args = ap.parse_args()
    material = ALUMINIUM if args.shells is None else ALUMINIUM.with_shells(args.shells)
    prior = None if args.prior == "none" else reference_prior(material, args.prior)
    extra = {"material": material, "prior": prior}
    paths = sorted(Path(args.data).glob("al_*K.h5"), key=lambda p: int(p.stem.split("_")[1][:-1]))
    spectra = [Spectrum.from_hdf5(p) for p in paths]
    for s in spectra:  # build the simulators (and the joint fit's float32 twins) outside the timings
        get_simulator(material, grid=s.grid, quantity=s.quantity)
        get_simulator(material, grid=s.grid, quantity=s.quantity, dtype=torch.float32)
    if args.profile:
        simulator_costs(material, spectra[0])
    out: dict = {"inputs": [str(p) for p in paths]}
    independent = None
    if not args.skip_independent:
        t0, c0 = time.perf_counter(), time.process_time()
        independent = [fit_spectrum(s, "gradient", fit_linewidth=True, fit_background=True, **extra)
                       for s in spectra]
        t_ind, c_ind = time.perf_counter() - t0, time.process_time() - c0
        nm = np.array([r.nmse for r in independent])
        temps = np.array([r.temperature for r in independent])
        fx = np.array([r.force_constants[0] for r in independent])
        rms = np.array([rms_frequency_thz(r.force_constants, r.material) for r in independent])
        print(f"independent gradient fits: {t_ind:.1f} s ({c_ind:.1f} s CPU) for {len(spectra)} spectra; NMSE "
              + " ".join(f"{v:.4f}" for v in nm) + f"; mean {nm.mean():.4f}")
        print("  1XX " + " ".join(f"{v:.2f}" for v in fx) + f" (falling: {monotonic_falling(temps, fx)}); RMS THz "
              + " ".join(f"{v:.3f}" for v in rms) + f" (falling: {monotonic_falling(temps, rms)})")
        out["independent"] = {"seconds": t_ind, "cpu_seconds": c_ind, "nmse": nm.tolist(),
                              "mean_nmse": float(nm.mean()), "1XX": fx.tolist(), "rms_thz": rms.tolist()}
    for model in args.models.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        r = fit_joint(spectra, model=model, **extra)
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        rms = np.array([e["rms_frequency_thz"] for e in r.entries])
        fx = r.force_constants[:, 0]
        res = {"seconds": sec, "cpu_seconds": cpu, "nmse": r.nmse.tolist(), "mean_nmse": r.mean_nmse,
               "1XX": fx.tolist(), "rms_thz": rms.tolist(), "falling_1XX": monotonic_falling(r.temperature, fx),
               "falling_rms": monotonic_falling(r.temperature, rms), "inflation": r.series["inflation"],
               "force_constants": r.force_constants.tolist(), "std": r.std.tolist(),
               "determined": [e["identifiability"]["constants"] for e in r.entries], "message": r.message,
               "smoothness": r.series["smoothness"], "evaluations": r.evaluations}
        print(f"joint {model}: {sec:.1f} s ({cpu:.1f} s CPU), {r.evaluations} batched calls; NMSE "
              + " ".join(f"{v:.4f}" for v in r.nmse) + f"; mean {r.mean_nmse:.4f}")
        print(f"  {r.message}")
        print("  1XX " + " ".join(f"{v:.2f}" for v in fx) + f" (falling: {res['falling_1XX']}); RMS THz "
              + " ".join(f"{v:.3f}" for v in rms) + f" (falling: {res['falling_rms']})")
        print("  constants at each T ± std (model-error inflation ×{:.2f}, std factor ×{:.2f}):".format(
            r.series["inflation"]["inflation"], r.series["inflation"]["std_factor"]))
        for t, f, s in zip(r.temperature, r.force_constants, r.std):
            print(f"    {t:5.0f} K " + " ".join(f"{a:7.3f}±{b:5.3f}" for a, b in zip(f, s)))
        print("  flags: " + "; ".join(f"{n}: {v['flag']}" for n, v in r.entries[0]["identifiability"]
                                      ["constants"].items()))
        if independent is not None:
            res["delta_mean_nmse"] = r.mean_nmse - out["independent"]["mean_nmse"]
            res["speedup"] = out["independent"]["seconds"] / sec
            res["speedup_cpu"] = out["independent"]["cpu_seconds"] / cpu
            print(f"  Δ mean NMSE vs independent {res['delta_mean_nmse']:+.4f} (target ≤ 0.01); "
                  f"speed-up ×{res['speedup']:.2f} (CPU time ×{res['speedup_cpu']:.2f})")
        out[f"joint_{model}"] = res
        if args.plot and model == args.models.split(",")[0]:
            series_figure(r, args.plot, independent=independent, overwrite=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
