"""Figure of a temperature series: constants, zone-boundary frequencies and NMSE against T, joint vs independent.

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
    for i, name in enumerate(names):
        ax = axes.flat[i]
        ax.plot(tt, fc_line[:, i], "-", color="C0", label=f"joint ({joint.series['model']})")
        if np.all(np.isfinite(std_line[:, i])):
            ax.fill_between(tt, fc_line[:, i] - std_line[:, i], fc_line[:, i] + std_line[:, i], color="C0", alpha=0.25)
        ax.plot(t, joint.force_constants[:, i], "o", color="C0")
        if independent:
            ti = np.array([r.temperature for r in independent])
            fi = np.array([r.force_constants[i] for r in independent])
            si = np.array([r.std[i] for r in independent])
            ax.errorbar(ti, fi, yerr=np.where(np.isfinite(si), si, 0.0), fmt="s", color="C1", capsize=3,
                        label="independent")
        ax.set_title(name)
        ax.set_xlabel("T (K)")
        ax.set_ylabel("N/m")
        if i == 0:
            ax.legend(fontsize=8)
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
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return p
