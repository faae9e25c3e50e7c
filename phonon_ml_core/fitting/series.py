"""Fits of a temperature series: one fit per spectrum, a table, linear trends per constant and a plot."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phonon_ml_core.data.fileio import atomic_path, check_output_path
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.inputs import resolve_material
from phonon_ml_core.fitting.results import FitResult, msq_combination
from phonon_ml_core.fitting.spectrum_fit import fit_spectrum
from phonon_ml_core.fitting.trends import linear_trend
from phonon_ml_core.specs import ALUMINIUM

log = logging.getLogger(__name__)


@dataclass
class SeriesResult:
    """Fits of a temperature series: per-spectrum results, a table and linear trends per constant.

    Attributes:
        results: one :class:`FitResult` per spectrum, in input order.
        temperature: (N,) K.
        force_constants, std: (N, K) N/m, in the order of :attr:`names`.
        trends: per constant name, {"slope" (N/m per K), "intercept" (N/m), "slope_std"} of a weighted
            straight line through the fitted values (weights 1/std² where finite, else uniform).
    """

    results: list[FitResult]
    temperature: np.ndarray
    force_constants: np.ndarray
    std: np.ndarray
    trends: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the constants (the fitted material's)."""
        return self.results[0].names if self.results else ALUMINIUM.names

    def table(self) -> str:
        """Plain-text table: T, each constant ± std, NMSE."""
        head = "T (K)   " + "".join(f"{n:>17s}" for n in self.names) + "     NMSE"
        rows = [head]
        for t, f, s, r in zip(self.temperature, self.force_constants, self.std, self.results):
            rows.append(f"{t:7.1f} " + "".join(f"{a:9.3f} ±{b:6.3f}" for a, b in zip(f, s)) + f"  {r.nmse:7.4f}")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: temperatures, constants, std, trends and names."""
        return {"temperature": self.temperature.tolist(), "force_constants": self.force_constants.tolist(),
                "std": np.where(np.isfinite(self.std), self.std, np.nan).tolist(), "trends": self.trends,
                "names": list(self.names)}

    def plot(self, path: str | Path, overwrite: bool = False) -> Path:
        """Constants vs T with error bars and linear fits, written atomically as a PNG."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        p = check_output_path(path, overwrite)
        n_panels = len(self.names) + 1
        n_cols = 3
        n_rows = -(-n_panels // n_cols)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3.5 * n_rows), constrained_layout=True,
                                 squeeze=False)
        order = np.argsort(self.temperature)
        tt = np.linspace(self.temperature.min(), self.temperature.max(), 50) if len(order) else np.array([])
        for i, name in enumerate(self.names):
            ax = axes.flat[i]
            err = np.where(np.isfinite(self.std[order, i]), self.std[order, i], 0.0)
            ax.errorbar(self.temperature[order], self.force_constants[order, i], yerr=err, fmt="o", capsize=3)
            tr = self.trends.get(name)
            if tr and np.isfinite(tr["slope"]):
                ax.plot(tt, tr["intercept"] + tr["slope"] * tt, "-",
                        label=f"{tr['slope'] * 100:+.3f} N/m per 100 K")
                ax.legend(fontsize=8)
            ax.set_title(name)
            ax.set_xlabel("T (K)")
            ax.set_ylabel("N/m")
        for ax in axes.flat[n_panels:]:
            ax.set_visible(False)
        ax = axes.flat[n_panels - 1]
        ax.plot(self.temperature[order], [self.results[j].nmse for j in order], "s-")
        ax.set_title("NMSE")
        ax.set_xlabel("T (K)")
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        return p


def fit_series(spectra: Spectrum | Sequence[Spectrum], method: str = "nelder-mead", plot: str | Path | None = None,
               overwrite: bool = False, temperatures: Sequence[float] | None = None, **kwargs) -> SeriesResult:
    """Fit each spectrum of a set (or list) and collect constants vs T with linear trends.

    ``kwargs`` go to :func:`~phonon_ml_core.fitting.spectrum_fit.fit_spectrum` (``material``, ``experiment``,
    ``method`` options). With ``plot`` a PNG (error bars, linear fits) is written atomically.
    """
    items = list(spectra)
    if not items:
        raise ValueError("no spectra to fit")
    if temperatures is not None and len(temperatures) != len(items):
        raise ValueError(f"{len(temperatures)} temperatures for {len(items)} spectra")
    if plot is not None:
        check_output_path(plot, overwrite)
    materials = [resolve_material(s, kwargs.get("material")) for s in items]
    if any(not m.same_as(materials[0]) for m in materials):
        raise ValueError("the spectra belong to different materials (" + ", ".join(sorted({m.name for m in materials}))
                         + "): fit each material's series separately")
    results = []
    for i, s in enumerate(items):
        t = None if temperatures is None else temperatures[i]
        r = fit_spectrum(s, method=method, temperature=t, **kwargs)
        log.info("fit %d/%d: T = %.0f K, NMSE %.4f, %d evaluations, %.1f s", i + 1, len(items), r.temperature,
                 r.nmse, r.evaluations, r.seconds)
        results.append(r)
    out = series_of(results)
    if plot is not None:
        out.plot(plot, overwrite=overwrite)
    return out


def series_of(results: Sequence[FitResult]) -> SeriesResult:
    """The :class:`SeriesResult` (table, trends per constant and of M⟨ω²⟩) of finished fits of one material."""
    results = list(results)
    if not results:
        raise ValueError("no fit results")
    material = results[0].material
    if any(not r.material.same_as(material) for r in results):
        raise ValueError("the fits are of different materials: summarise each material's series separately")
    temps = np.array([r.temperature for r in results])
    fcs = np.array([r.force_constants for r in results])
    stds = np.array([r.std for r in results])
    trends = {name: linear_trend(temps, fcs[:, i], stds[:, i]) for i, name in enumerate(material.names)}
    trends["M<w2> combination"] = linear_trend(temps, msq_combination(fcs, material), np.full(len(temps), np.nan))
    return SeriesResult(results=results, temperature=temps, force_constants=fcs, std=stds, trends=trends)
