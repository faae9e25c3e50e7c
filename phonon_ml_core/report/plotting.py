"""Figures people look at: spectrum maps and measured-vs-simulated comparisons (matplotlib, Agg)."""
from __future__ import annotations

import os

import numpy as np

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.spectrum import Spectrum


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a figure as PNG atomically and close it."""
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_spectrum(spectrum: Spectrum, path: str | os.PathLike, title: str | None = None,
                  compare: Spectrum | None = None) -> None:
    """χ''(|Q|,E) map (and the |Q|-averaged intensity); with ``compare``, side by side and overlaid."""
    plt = _plt()
    panels = [spectrum] if compare is None else [spectrum, compare]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.8 * (len(panels) + 1), 3.8), constrained_layout=True)
    vals = np.concatenate([np.asarray(s.intensity)[np.asarray(s.mask)].ravel() for s in panels])
    vmin, vmax = np.nanpercentile(vals, [1, 99.5])
    labels = ["spectrum", "comparison"] if title is None else [title, "comparison"]
    for ax, s, lab in zip(axes, panels, labels):
        g = s.grid
        im = ax.pcolormesh(g.q_edges, g.energy_edges, np.where(g.mask, s.intensity, np.nan), vmin=vmin, vmax=vmax,
                           cmap="viridis", shading="flat")
        ax.set_xlabel("|Q| (1/Å)")
        ax.set_ylabel("Energy transfer (meV)")
        t = s.temperature
        ax.set_title(f"{lab}" + (f", T = {t:.0f} K" if isinstance(t, float) else ""), fontsize=9)
        fig.colorbar(im, ax=ax, label=f"{s.quantity} ({s.normalization}-normalised)")
    ax = axes[-1]
    for s, lab, style in zip(panels, labels, ("-", "--")):
        ax.plot(s.grid.energy, s.q_averaged(), style, label=lab)
    ax.set_xlabel("Energy transfer (meV)")
    ax.set_ylabel("|Q|-averaged intensity")
    ax.legend(fontsize=8)
    save_figure(fig, path)
