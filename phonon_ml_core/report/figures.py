"""The evaluation's figures: intensity vs T (Fig. 2), constants vs T (Fig. 3), NMSE per model, measured latents."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.report.budget import STRATEGIES
from phonon_ml_core.report.plotting import _plt, save_figure
from phonon_ml_core.report.tables import ModelRecord


def plot_intensity(measured: Spectrum, best: ModelRecord | None, fits: list[Any], path: Path) -> None:
    """Fig. 2: measured vs simulated |Q|-averaged intensity across temperatures (offset)."""
    plt = _plt()
    g = measured.grid
    x = measured.normalized()
    n = measured.n_spectra
    fig, ax = plt.subplots(figsize=(6.5, 2.0 + 1.3 * n))
    def qa(a):
        return np.nanmean(np.where(g.mask, a, np.nan), axis=-1)

    temps = measured.temperatures()
    for k in range(n):
        off = 0.45 * k
        ax.plot(g.energy, qa(x.intensity[k]) + off, "o", ms=2.5, color="k", label="measured" if k == 0 else None)
        if best is not None and best.simulated is not None:
            ax.plot(g.energy, qa(best.simulated[k]) + off, "-", color="C0",
                    label=f"{best.name} (ML)" if k == 0 else None)
        if fits:
            ax.plot(g.energy, qa(fits[k].simulated.intensity) + off, "--", color="C3",
                    label="fit (γ and background free)" if k == 0 else None)
        lab = f"{temps[k]:.0f} K"
        if best is not None and best.nmse is not None:
            lab += f"  ML {best.nmse[k]:.3f}"
        if fits:
            lab += f"  fit {fits[k].nmse:.3f}"
        ax.text(g.energy[-1] + 0.5, qa(x.intensity[k])[-1] + off, lab, fontsize=7, va="center")
    ax.set_xlim(g.energy[0] - 0.5, g.energy[-1] + 13)
    ax.set_xlabel("Energy transfer (meV)")
    ax.set_ylabel("|Q|-averaged χ'' (mean-normalised, offset)")
    ax.set_title("measured vs simulated from predicted / fitted constants (NMSE per T)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    save_figure(fig, path)


def plot_force_constants(temps: np.ndarray, best: ModelRecord | None, fits: list[Any], path: Path,
                         path_1xx: Path, mono: dict[str, Any], names: Sequence[str]) -> None:
    """Fig. 3: the constants (``names``, N/m) vs T with error bars (ML: latent-sample std; fit: Gauss–Newton std),
    and the NMSE in the last panel."""
    plt = _plt()
    o = np.argsort(temps)
    n_rows = -(-(len(names) + 1) // 3)
    fig, axes = plt.subplots(n_rows, 3, figsize=(12, 3.25 * n_rows), constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(names) + 1:]:
        ax.set_visible(False)
    for i, name in enumerate(names):
        ax = axes.flat[i]
        if best is not None and best.fc is not None:
            ax.errorbar(temps[o] - 4, best.fc[o, i], yerr=best.std[o, i], fmt="o-", capsize=3, label=best.name)
        if fits:
            f = np.array([r.force_constants[i] for r in fits])
            s = np.array([np.nan_to_num(r.std[i]) for r in fits])
            ax.errorbar(temps[o] + 4, f[o], yerr=s[o], fmt="s--", capsize=3, color="C3", label="fit")
        ax.set_title(name)
        ax.set_xlabel("T (K)")
        ax.set_ylabel("N/m")
    axes.flat[0].legend(fontsize=7)
    ax = axes.flat[len(names)]
    if best is not None and best.nmse is not None:
        ax.plot(temps[o], best.nmse[o], "o-", label=best.name)
    if fits:
        ax.plot(temps[o], np.array([r.nmse for r in fits])[o], "s--", color="C3", label="fit")
    ax.set_title("NMSE vs measured")
    ax.set_xlabel("T (K)")
    ax.legend(fontsize=7)
    save_figure(fig, path)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key, rec, style, color in (("ml", best, "o-", "C0"), ("fit", None, "s--", "C3")):
        m = mono.get(key)
        if m is None:
            continue
        if key == "ml":
            y, e, lab = rec.fc[o, 0], rec.std[o, 0], rec.name
        else:
            y = np.array([r.force_constants[0] for r in fits])[o]
            e = np.array([np.nan_to_num(r.std[0]) for r in fits])[o]
            lab = "fit"
        verdict = "monotonic ↓" if m["non_increasing"] else f"{m['n_increasing_steps']} rise(s)"
        ax.errorbar(temps[o], y, yerr=e, fmt=style, color=color, capsize=3,
                    label=f"{lab}: {m['slope_per_100K']:+.2f}±{m['slope_std_per_100K']:.2f} N/m per 100 K, "
                          f"ρ={m['spearman_rho']:.2f}, {verdict}")
    ax.set_xlabel("T (K)")
    ax.set_ylabel(f"{names[0]} (N/m)")
    ax.set_title(f"dominant constant {names[0]} vs temperature", fontsize=9)
    ax.legend(fontsize=6.5)
    save_figure(fig, path_1xx)


def plot_nmse_bars(records: list[ModelRecord], fit_mean: float | None, path: Path) -> None:
    """Mean NMSE on the measured spectra per model, with the fit benchmark as a line."""
    plt = _plt()
    recs = [r for r in records if r.nmse is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(recs) + 2), 3.5))
    vals = [r.mean_nmse if np.isfinite(r.mean_nmse) else np.nan for r in recs]
    colours = [f"C{STRATEGIES.index(r.strategy)}" if r.strategy in STRATEGIES else "C3" for r in recs]
    ax.bar(range(len(recs)), vals, color=colours)
    if fit_mean is not None:
        ax.axhline(fit_mean, color="k", ls="--", label=f"fit benchmark {fit_mean:.3f}")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(recs)))
    ax.set_xticklabels([r.name for r in recs], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mean NMSE (measured)")
    save_figure(fig, path)


def plot_measured_latent(bundle: Any, measured: Spectrum, dims: Sequence[int], path: Path) -> None:
    """Fig. 4 companion: latent means (± posterior σ) of the measured spectra on the active dimensions vs T."""
    plt = _plt()
    mu, lv = bundle.encode(measured)
    mu = np.atleast_2d(mu)
    sd = np.zeros_like(mu) if lv is None else np.exp(0.5 * np.atleast_2d(lv))
    t = measured.temperatures()
    o = np.argsort(t)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for d in dims:
        ax.errorbar(t[o], mu[o, d], yerr=sd[o, d], fmt="o-", capsize=3, label=f"z{d}")
    ax.set_xlabel("T (K)")
    ax.set_ylabel("latent mean")
    ax.set_title("measured spectra in the latent space (active dimensions)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)

