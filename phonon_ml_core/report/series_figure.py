"""Figures of a temperature series: constants, zone-boundary frequencies and NMSE against T, joint vs independent
(:func:`series_figure`), and independent fits alone (:func:`fits_figure`).

One panel per constant (joint series model as a line with its ±1σ band, inflated for model error; independent fits
as points with error bars), the highest zone-boundary frequency at each point, the NMSE, and the identifiability
of the constants (relative std of each, with the determined / undetermined thresholds).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.fitting.frequencies import zone_boundary_frequencies
from phonon_ml_core.fitting.identifiability import DETERMINED, UNDETERMINED
from phonon_ml_core.fitting.joint_result import JointResult
from phonon_ml_core.fitting.results import FitResult
from phonon_ml_core.fitting.series import series_of
from phonon_ml_core.report.plotting import WARN


def series_figure(joint: JointResult, path: str | Path, independent: Sequence[FitResult] | None = None,
                  overwrite: bool = False) -> Path:
    """Write the series figure of ``joint`` (and the ``independent`` fits, if given) as a PNG, atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = check_output_path(path, overwrite)
    names = joint.names
    n_panels = len(names) + 3
    n_cols = 4
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3.3 * n_rows), constrained_layout=True,
                             squeeze=False)
    t = joint.temperature
    tt = np.linspace(t.min(), t.max(), 60)
    fc_line, std_line = joint.constants_at(tt)
    hit = at_bound_mask(joint.force_constants, joint.material.fit_bounds)
    bad: list[str] = []
    for i, name in enumerate(names):
        ax = axes.flat[i]
        ax.plot(tt, fc_line[:, i], "-", color="C0", label=f"joint ({joint.series['model']})")
        if np.all(np.isfinite(std_line[:, i])):
            ax.fill_between(tt, fc_line[:, i] - std_line[:, i], fc_line[:, i] + std_line[:, i], color="C0", alpha=0.25)
        ax.plot(t, joint.force_constants[:, i], "o", color="C0")
        marked = [(t[hit[:, i]], joint.force_constants[hit[:, i], i])]
        if independent:
            ti = np.array([r.temperature for r in independent])
            fi = np.array([r.force_constants[i] for r in independent])
            si = np.array([r.std[i] for r in independent])
            ax.errorbar(ti, fi, yerr=np.where(np.isfinite(si), si, 0.0), fmt="s", color="C1", capsize=3,
                        label="independent")
            on = np.array([name in r.at_bounds for r in independent], dtype=bool)
            marked.append((ti[on], fi[on]))
        tb = np.concatenate([m[0] for m in marked])
        if len(tb):
            ax.plot(tb, np.concatenate([m[1] for m in marked]), "o", ms=11, mfc="none", mec=WARN, mew=2,
                    label="AT A BOUND")
            bad.append(name)
        ax.set_title(name, color=WARN if len(tb) else "k")
        ax.set_xlabel("T (K)")
        ax.set_ylabel(f"{name} (N/m)")
        if i == 0 or len(tb):
            ax.legend(fontsize=7)
    ax = axes.flat[len(names)]
    points = list(joint.entries[0]["frequencies_thz"])
    for j, pt in enumerate(points):
        f = np.array([e["frequencies_thz"][pt][-1] for e in joint.entries])
        s = np.array([np.nan if e["frequencies_std_thz"] is None or e["frequencies_std_thz"][pt][-1] is None
                      else e["frequencies_std_thz"][pt][-1] for e in joint.entries])
        ax.plot(t, f, "o-", color=f"C{j}", label=f"{pt} (joint)")
        if np.all(np.isfinite(s)):
            ax.fill_between(t[np.argsort(t)], (f - s)[np.argsort(t)], (f + s)[np.argsort(t)], color=f"C{j}",
                            alpha=0.25)
        if independent:
            fi = [zone_boundary_frequencies(r.material, r.force_constants)[0][pt][-1] for r in independent]
            ax.plot([r.temperature for r in independent], fi, "s", color=f"C{j}", mfc="none")
    ax.set_title("highest zone-boundary frequency")
    ax.set_xlabel("T (K)")
    ax.set_ylabel("THz")
    ax.legend(fontsize=7)
    ax = axes.flat[len(names) + 1]
    ax.plot(t, joint.nmse, "o-", label="joint")
    if independent:
        ax.plot([r.temperature for r in independent], [r.nmse for r in independent], "s--", label="independent")
    ax.set_title("NMSE")
    ax.set_xlabel("T (K)")
    ax.set_ylabel("NMSE (dimensionless)")
    ax.legend(fontsize=8)
    ax = axes.flat[len(names) + 2]
    mid = int(np.argsort(t)[len(t) // 2])
    rel = [joint.entries[mid]["identifiability"]["constants"][n]["relative_std"] for n in names]
    rel = np.array([np.nan if v is None else v for v in rel])
    ax.bar(range(len(names)), rel, color=["C2" if v <= DETERMINED else "C1" if v <= UNDETERMINED else "C3"
                                          for v in np.nan_to_num(rel, nan=1e9)])
    ax.axhline(DETERMINED, color="k", ls=":", lw=1)
    ax.axhline(UNDETERMINED, color="k", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_title(f"relative std at {t[mid]:.0f} K (green: determined)")
    ax.set_ylabel("std / |value| (dimensionless)")
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    title = (f"{joint.material.name}: joint {joint.series['model']} fit of {len(t)} spectra "
             f"({t.min():.0f}–{t.max():.0f} K), mean NMSE {joint.mean_nmse:.4f}"
             + ("" if not independent else
                f"; independent {independent[0].method} fits: mean NMSE {float(np.mean(series_nmse(independent))):.4f}")
             + ("" if joint.converged else " (NOT converged)"))
    if bad:
        title += f"\nAT A BOUND of the search (red circles): {', '.join(bad)}; not minima of the misfit"
    fig.suptitle(title, fontsize=10, color=WARN if bad else "k")
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return p


def at_bound_mask(force_constants: np.ndarray, bounds: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """(N, K) True where a constant (N/m) sits on its (low, high) bound (K, 2) to within ``rtol`` of the range."""
    b = np.asarray(bounds, dtype=float)
    tol = rtol * (b[:, 1] - b[:, 0])
    fc = np.asarray(force_constants, dtype=float)
    return (fc <= b[:, 0] + tol) | (fc >= b[:, 1] - tol)


def fits_figure(results: Sequence[FitResult], path: str | Path, overwrite: bool = False) -> Path:
    """Independent fits of a series: one panel per constant against T (N/m, ±1σ, straight-line trend), the NMSE,
    the title naming the material, method and mean NMSE; fits that ended on a bound are marked in red. PNG, atomic."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = check_output_path(path, overwrite)
    series = series_of(results)
    names = series.names
    n_panels = len(names) + 1
    n_cols = 3
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.4 * n_cols, 3.5 * n_rows), constrained_layout=True,
                             squeeze=False)
    t = series.temperature
    order = np.argsort(t)
    tt = np.linspace(t.min(), t.max(), 50)
    for i, name in enumerate(names):
        ax = axes.flat[i]
        err = np.where(np.isfinite(series.std[order, i]), series.std[order, i], 0.0)
        ax.errorbar(t[order], series.force_constants[order, i], yerr=err, fmt="o", capsize=3, color="C0",
                    label="fit ±1σ")
        tr = series.trends.get(name)
        if tr and np.isfinite(tr["slope"]) and len(t) > 1:
            ax.plot(tt, tr["intercept"] + tr["slope"] * tt, "-", color="C0", alpha=0.6,
                    label=f"trend {tr['slope'] * 100:+.3f} N/m per 100 K")
        hit = [j for j in order if name in results[j].at_bounds]
        if hit:
            ax.plot(t[hit], series.force_constants[hit, i], "o", ms=11, mfc="none", mec=WARN, mew=2,
                    label="AT A BOUND of the search")
            ax.set_title(f"{name} (at a bound at {', '.join(f'{t[j]:.0f}' for j in hit)} K)", color=WARN,
                         fontsize=10)
        else:
            ax.set_title(name, fontsize=10)
        ax.set_xlabel("T (K)")
        ax.set_ylabel(f"{name} (N/m)")
        ax.legend(fontsize=7)
    ax = axes.flat[len(names)]
    ax.plot(t[order], series_nmse(results)[order], "s-", color="C3")
    ax.set_title("NMSE of each fit", fontsize=10)
    ax.set_xlabel("T (K)")
    ax.set_ylabel("NMSE (dimensionless)")
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    methods = ", ".join(sorted({r.method for r in results}))
    nuisance = [w for w, on in (("γ", results[0].linewidth_std is not None),
                                ("background slope", results[0].background is not None)) if on]
    title = (f"{results[0].material.name}: {methods} fits of {len(results)} spectra"
             + (f" (free {' and '.join(nuisance)})" if nuisance else "")
             + f", mean NMSE {float(np.mean(series_nmse(results))):.4f}")
    stopped = [f"{r.temperature:.0f} K" for r in results if not r.converged]
    if stopped:
        title += f" (NOT converged at {', '.join(stopped)})"
    bad = sorted({n for r in results for n in r.at_bounds})
    if bad:
        title += f"\nAT A BOUND of the search: {', '.join(bad)} (red circles): not minima of the misfit"
    fig.suptitle(title, fontsize=10, color=WARN if bad else "k")
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return p


def series_nmse(results: Sequence[FitResult]) -> np.ndarray:
    """(N,) NMSE of each fit."""
    return np.array([r.nmse for r in results], dtype=float)
