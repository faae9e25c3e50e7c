"""``phonon-ml fit``: least-squares force constants for each spectrum of one or more HDF5 files."""
from __future__ import annotations

import argparse
import json
import logging
import os
import time

import numpy as np

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.fitting.spectrum_fit import METHODS, fit_series
from phonon_ml_core.data.spectrum import Spectrum

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fit", help="fit force constants to measured spectra by Nelder-Mead or gradient descent",
        description="Fit the five force constants [1XX, 1XY, 1ZZ, 2XX, 2YY] (N/m) to each spectrum of the input "
                    "files by minimising the NMSE against the powder simulator (docs/fitting.md).")
    p.add_argument("--method", default="nelder-mead", choices=METHODS,
                   help="nelder-mead (scipy, bounded) or gradient (autograd multi-start + L-BFGS-B)")
    p.add_argument("--input", required=True, nargs="+", help="phonon-ml HDF5 spectrum file(s), one spectrum or a set")
    p.add_argument("--output", required=True, help="RESULT.json (one entry per input spectrum)")
    p.add_argument("--temperature", type=float, default=None, help="K; overrides the temperature in the files")
    p.add_argument("--fit-linewidth", action=argparse.BooleanOptionalAction, default=True,
                   help="fit the intrinsic linewidth γ (HWHM = γ·E) as a nuisance parameter (default: on)")
    p.add_argument("--fit-background", action=argparse.BooleanOptionalAction, default=True,
                   help="fit a residual background slope in energy (default: on; docs/fitting.md)")
    p.add_argument("--start", default=None, help="starting constants F1,...,F5 in N/m (default: reference)")
    p.add_argument("--max-evaluations", type=int, default=None, help="simulator-call budget per spectrum")
    p.add_argument("--seed", type=int, default=0, help="seed of the gradient fit's extra starts")
    p.add_argument("--plot", default=None, help="PNG of the constants against temperature (needs ≥ 1 spectrum)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def _parse_start(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    try:
        v = np.array([float(x) for x in text.split(",")])
    except ValueError as exc:
        raise ValueError(f"--start must be five comma-separated numbers (N/m), got {text!r}") from exc
    if v.shape != (5,) or not np.all(np.isfinite(v)):
        raise ValueError(f"--start must be five finite numbers [1XX,1XY,1ZZ,2XX,2YY] in N/m, got {text!r}")
    return v


def run(args: argparse.Namespace) -> int:
    out = check_output_path(args.output, args.overwrite)
    if args.plot is not None:
        check_output_path(args.plot, args.overwrite)
    if args.temperature is not None and not args.temperature > 0:
        raise ValueError(f"--temperature must be a positive number of kelvin, got {args.temperature}")
    start = _parse_start(args.start)
    if args.max_evaluations is not None and args.max_evaluations < 1:
        raise ValueError("--max-evaluations must be a positive integer")
    items, sources = [], []
    for path in args.input:
        s = Spectrum.from_hdf5(path)
        for i, member in enumerate(s):
            items.append(member)
            sources.append({"input": os.fspath(path), "index": i if s.is_set else None})
    temps = None if args.temperature is None else [args.temperature] * len(items)
    t0 = time.perf_counter()
    series = fit_series(items, method=args.method, temperatures=temps, start=start, fit_linewidth=args.fit_linewidth,
                        fit_background=args.fit_background, seed=args.seed, max_evaluations=args.max_evaluations, plot=args.plot,
                        overwrite=args.overwrite)
    entries = []
    for src, r in zip(sources, series.results):
        entry = r.to_dict()
        entry.update(src)
        entries.append(entry)
        idx = "" if src["index"] is None else f"[{src['index']}]"
        print(f"{src['input']}{idx}: T = {r.temperature:.0f} K, NMSE {r.nmse:.4f}, "
              f"fc = {np.round(r.force_constants, 3).tolist()} ± {np.round(r.std, 3).tolist()} N/m, "
              + ("" if r.background is None else f"background slope b1 {r.background[1]:.5f}/meV, ")
              + f"{r.evaluations} simulator calls, {r.seconds:.1f} s{'' if r.converged else ' (NOT converged)'}")
    doc = {"results": entries, "method": args.method, "fit_linewidth": bool(args.fit_linewidth),
           "fit_background": bool(args.fit_background),
           "total_seconds": time.perf_counter() - t0,
           "series": series.to_dict() if len(entries) > 1 else None}
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False))
    print(f"wrote {out}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def _clean(o):
    """JSON-safe copy: numpy → Python, NaN/inf → None."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, np.ndarray)):
        return [_clean(v) for v in (o.tolist() if isinstance(o, np.ndarray) else o)]
    if isinstance(o, (np.floating, np.integer)):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o
