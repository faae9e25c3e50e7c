"""Figures people look at: spectrum maps, measured-vs-simulated comparisons, the figure of one fit (matplotlib)."""
from __future__ import annotations

import os
import warnings

import numpy as np

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.results import FitResult


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
    method = None if compare is None else (compare.metadata or {}).get("fit_method")
    other = "comparison" if method is None else f"fit ({method})"
    labels = ["spectrum", other] if title is None else [title, other]
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
    ax.set_ylabel(f"|Q|-averaged {spectrum.quantity} ({spectrum.normalization}-normalised)")
    ax.legend(fontsize=8)
    if compare is not None:
        fig.suptitle(comparison_title(spectrum, compare, other), fontsize=9)
    save_figure(fig, path)


def comparison_title(spectrum: Spectrum, compare: Spectrum, label: str) -> str:
    """'fit (method): NMSE x; 1XX = … N/m, …' for a comparison spectrum (its constants when it records them)."""
    from phonon_ml_core.data.normalization import nmse

    a = spectrum if spectrum.normalization == "mean" else spectrum.normalized()
    b = compare if compare.normalization == "mean" else compare.normalized()
    text = f"{label}: NMSE {float(nmse(a.intensity, b.intensity, a.grid.mask)):.4f} against {_data_label(spectrum)}"
    if compare.force_constants is not None:
        fc = np.ravel(compare.force_constants)
        text += "\n" + ", ".join(f"{n} = {v:.2f} N/m" for n, v in zip(compare.names, fc))
    return text


def _data_label(spectrum: Spectrum) -> str:
    """'the data at T = … K' (or 'the data')."""
    t = spectrum.temperature
    return f"the data at T = {t:.0f} K" if isinstance(t, float) else "the data"


#: Colour of everything that warns (constants at a bound of the search).
WARN = "#c0392b"


def fit_summary(result: FitResult) -> str:
    """One line saying what a fit shows: material, method, T (K), NMSE, γ and the background slope (per meV)."""
    parts = [f"{result.material.name}: {result.method} fit at T = {result.temperature:.0f} K",
             f"NMSE {result.nmse:.4f}"]
    if result.linewidth is not None:
        sd = result.linewidth_std
        parts.append(f"γ = {result.linewidth:.3f}" + ("" if sd is None or not np.isfinite(sd) else f" ± {sd:.3f}")
                     + " (HWHM = γ·E)")
    if result.background is not None:
        parts.append(f"background slope b1 = {result.background[1]:.4f} /meV")
    return ", ".join(parts) + ("" if result.converged else " (NOT converged)")


def constants_label(result: FitResult, per_line: int = 3) -> str:
    """'1XX = 10.35 ± 0.12 N/m, …' with '(AT BOUND)' after each constant that ended on a bound of the search."""
    items = []
    for name, v, s in zip(result.names, result.force_constants, result.std):
        sd = f" ± {s:.2f}" if np.isfinite(s) else ""
        items.append(f"{name} = {v:.2f}{sd} N/m" + (" (AT BOUND)" if name in result.at_bounds else ""))
    return "\n".join(", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def plot_fit(result: FitResult, spectrum: Spectrum, path: str | os.PathLike) -> None:
    """The figure of one fit: data, fit and residual χ''(|Q|,E) maps on one colour scale, the |Q|-averaged and
    E-averaged cuts (data points, fit line), and the constants with their std (N/m); constants that ended on a bound
    of the search are marked in red in the title and the table. Written atomically as a PNG."""
    if result.simulated is None:
        raise ValueError("the fit result holds no simulated spectrum to overlay (FitResult.simulated is None)")
    plt = _plt()
    data = spectrum if spectrum.normalization == "mean" else spectrum.normalized()
    fit = result.simulated
    g = data.grid
    m = np.asarray(g.mask)
    x = np.where(m, np.asarray(data.intensity, dtype=float), np.nan)
    y = np.where(m, np.asarray(fit.intensity, dtype=float), np.nan)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.6), constrained_layout=True)
    vmin, vmax = np.nanpercentile(np.concatenate([x[m], y[m]]), [1, 99.5])
    unit = f"{data.quantity} (mean-normalised)"
    for ax, z, title in ((axes[0, 0], x, f"data, T = {result.temperature:.0f} K"),
                         (axes[0, 1], y, f"fit ({result.method})")):
        im = ax.pcolormesh(g.q_edges, g.energy_edges, z, vmin=vmin, vmax=vmax, cmap="viridis", shading="flat")
        fig.colorbar(im, ax=ax, label=unit)
        ax.set_title(title, fontsize=10)
    r = x - y
    lim = float(np.nanpercentile(np.abs(r[m]), 99)) or 1.0
    im = axes[0, 2].pcolormesh(g.q_edges, g.energy_edges, r, vmin=-lim, vmax=lim, cmap="RdBu_r", shading="flat")
    fig.colorbar(im, ax=axes[0, 2], label=f"data − fit, {unit}")
    axes[0, 2].set_title(f"residual (NMSE {result.nmse:.4f})", fontsize=10)
    for ax in axes[0]:
        ax.set_xlabel("|Q| (1/Å)")
        ax.set_ylabel("Energy transfer (meV)")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():  # rows/columns outside the coverage are all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        cuts = ((axes[1, 0], g.energy, np.nanmean(x, axis=1), np.nanmean(y, axis=1), "Energy transfer (meV)",
                 f"|Q|-averaged {data.quantity} (mean-normalised)"),
                (axes[1, 1], g.q, np.nanmean(x, axis=0), np.nanmean(y, axis=0), "|Q| (1/Å)",
                 f"E-averaged {data.quantity} (mean-normalised)"))
    for ax, axis, dx, dy, xlabel, ylabel in cuts:
        ax.plot(axis, dx, "o", ms=3, color="k", label="data")
        ax.plot(axis, dy, "-", color="C3", label=f"fit ({result.method}, NMSE {result.nmse:.4f})")
        ax.plot(axis, dx - dy, "-", lw=0.8, color="0.5", label="data − fit")
        ax.axhline(0, color="0.8", lw=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    _constants_table(axes[1, 2], result)
    title = fit_summary(result) + "\n" + constants_label(result)
    fig.suptitle(title, fontsize=10)
    if result.at_bounds:
        fig.text(0.5, -0.01, f"ended on a bound of the search: {', '.join(result.at_bounds)} — not a minimum of the "
                 "misfit; widen the bounds, check the start, the material and the data", ha="center", va="top",
                 color=WARN, fontsize=10, fontweight="bold")
    save_figure(fig, path)


def _constants_table(ax, result: FitResult) -> None:
    """Constants (N/m) with std, start and the material's reference; rows at a bound in red."""
    ax.axis("off")
    ref = np.asarray(result.material.reference_constants, dtype=float)
    start = ref if result.start is None else np.asarray(result.start, dtype=float)
    rows = [f"{'':6s}{'fit':>9s}{'± std':>8s}{'start':>9s}{'reference':>11s}   (N/m)"]
    colors = ["k"]
    for i, name in enumerate(result.names):
        s = result.std[i]
        rows.append(f"{name:6s}{result.force_constants[i]:9.3f}{(f'{s:8.3f}' if np.isfinite(s) else '     n/a')}"
                    f"{start[i]:9.3f}{ref[i]:11.3f}" + ("   AT BOUND" if name in result.at_bounds else ""))
        colors.append(WARN if name in result.at_bounds else "k")
    if result.linewidth is not None:
        hit = "linewidth" in result.at_bounds
        rows.append(f"{'γ':6s}{result.linewidth:9.4f}   (HWHM = γ·E, dimensionless)" + ("   AT BOUND" if hit else ""))
        colors.append(WARN if hit else "k")
    rows.append(f"{result.evaluations} simulator calls, {result.seconds:.1f} s; "
                f"{'converged' if result.converged else 'NOT converged'}")
    colors.append("k" if result.converged else WARN)
    for j, (row, color) in enumerate(zip(rows, colors)):
        ax.text(0.0, 1.0 - 0.085 * j, row, family="monospace", fontsize=8.5, color=color, va="top",
                transform=ax.transAxes, fontweight="bold" if color == WARN else "normal")
    ax.set_title(f"constants of {result.material.name} (reference: {result.material.reference_temperature_k:.0f} K)"
                 if result.material.reference_temperature_k else f"constants of {result.material.name}", fontsize=10)
