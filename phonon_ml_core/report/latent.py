"""Latent-space analysis of a trained bundle (the study's Fig. 4 and Fig. S2–S5 equivalents).

For a bundle and a set of spectra on its grid:

* **active dimensions**: the mean over the spectra of KL(q(z_d|x) ‖ N(0, 1)) per latent dimension d
  (closed form, nats), sorted; a dimension is *active* when its mean KL exceeds ``threshold``
  (default 0.01 nats). Deterministic autoencoders (fcae, cnnae) have no posterior: their activity
  measure is the variance of the codes across the spectra divided by the largest such variance,
  and the same threshold applies to it.
* **decoder sensitivity**: from the mean code z̄ of the spectra, decode z̄ ± ``delta`` e_d (default 0.5)
  for every dimension d; the change Δ_d = decode(z̄ + δ e_d) − decode(z̄ − δ e_d) on the valid pixels is
  reported as numbers (RMS, max |Δ|, RMS relative to the RMS of decode(z̄)) and as images.
* **correlations**: Pearson correlation of the latent means with the force constants (when the spectra
  carry labels; and with the temperature when it varies) and between latent dimensions.

:func:`analyse_latent` computes, :func:`write_latent_analysis` writes CSV tables, PNG figures and
``latent_summary.json`` (all atomically). ``phonon-ml latent-analysis`` is the command line.
"""
from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.jsonio import write_json
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.defaults import LATENT_ACTIVE_THRESHOLD, LATENT_SENSITIVITY_DELTA

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = LATENT_ACTIVE_THRESHOLD
DEFAULT_DELTA = LATENT_SENSITIVITY_DELTA


@dataclass
class LatentAnalysis:
    """Result of :func:`analyse_latent` (dimensions are indexed 0 … latent_dim − 1).

    Attributes:
        family, latent_dim, variational: the bundle's autoencoder.
        n_spectra: spectra analysed.
        mu, logvar: posterior means and log-variances (N, L); logvar None for plain autoencoders.
        kl: mean KL per dimension (L,) in nats (VAEs); for plain AEs the relative code variance.
        activity_measure: "kl_nats" or "relative_code_variance".
        threshold: activity threshold; ``active`` (L,) bool; ``order``: dimensions by decreasing activity.
        delta: the ± step of the sensitivity analysis; ``mean_code`` (L,) z̄.
        base: decode(z̄) on the grid (n_E, n_Q), NaN outside the mask.
        plus, minus: decode(z̄ ± δ e_d), (L, n_E, n_Q).
        sensitivity_rms, sensitivity_max, sensitivity_relative: (L,) change per dimension.
        fc_correlation: (L, K) Pearson r of mu with the labels (None without labels); ``fc_names`` (K,).
        latent_correlation: (L, L) Pearson r between latent dimensions (unit diagonal; NaN where a
            dimension is constant).
    """

    family: str
    latent_dim: int
    variational: bool
    n_spectra: int
    mu: np.ndarray
    logvar: np.ndarray | None
    kl: np.ndarray
    activity_measure: str
    threshold: float
    active: np.ndarray
    order: np.ndarray
    delta: float
    mean_code: np.ndarray
    base: np.ndarray
    plus: np.ndarray
    minus: np.ndarray
    sensitivity_rms: np.ndarray
    sensitivity_max: np.ndarray
    sensitivity_relative: np.ndarray
    fc_correlation: np.ndarray | None
    fc_names: list[str] = field(default_factory=list)
    latent_correlation: np.ndarray | None = None
    temperature: np.ndarray | None = None
    grid: Any = None

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    @property
    def sensitivity(self) -> np.ndarray:
        """Δ_d maps (L, n_E, n_Q) = decode(z̄ + δ e_d) − decode(z̄ − δ e_d)."""
        return self.plus - self.minus

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (no per-spectrum arrays)."""
        def lst(a):
            return None if a is None else [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]

        out = {"family": self.family, "latent_dim": self.latent_dim, "variational": self.variational,
               "n_spectra": self.n_spectra, "activity_measure": self.activity_measure,
               "threshold": self.threshold, "n_active": self.n_active,
               "active_dimensions": [int(d) for d in self.order if self.active[d]],
               "order": [int(d) for d in self.order], "kl_per_dimension": lst(self.kl),
               "kl_total": float(np.nansum(self.kl)) if self.variational else None,
               "delta": self.delta, "mean_code": lst(self.mean_code),
               "sensitivity_rms": lst(self.sensitivity_rms), "sensitivity_max": lst(self.sensitivity_max),
               "sensitivity_relative": lst(self.sensitivity_relative)}
        if self.fc_correlation is not None:
            out["fc_correlation"] = {n: lst(self.fc_correlation[:, j]) for j, n in enumerate(self.fc_names)}
            best = {}
            for j, n in enumerate(self.fc_names):
                col = np.abs(np.nan_to_num(self.fc_correlation[:, j], nan=0.0))
                d = int(np.argmax(col))
                best[n] = {"dimension": d, "r": lst(self.fc_correlation[d, j])[0]}
            out["most_correlated_dimension"] = best
        return out


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between the columns of a (N, P) and b (N, Q) → (P, Q); NaN for constant columns."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    a = a - a.mean(0)
    b = b - b.mean(0)
    na = np.sqrt((a ** 2).sum(0))
    nb = np.sqrt((b ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ b) / np.outer(na, nb)
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def latent_correlation_matrix(mu: np.ndarray) -> np.ndarray:
    """(L, L) Pearson correlation between latent dimensions, diagonal exactly 1."""
    r = _pearson(mu, mu)
    np.fill_diagonal(r, 1.0)
    return r


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean over spectra of KL(N(mu, e^logvar) ‖ N(0, 1)) per dimension (L,), nats (≥ 0)."""
    mu = np.asarray(mu, float)
    lv = np.asarray(logvar, float)
    kl = -0.5 * (1.0 + lv - mu ** 2 - np.exp(lv))
    return np.maximum(kl.mean(0), 0.0)


@torch.no_grad()
def decoder_sensitivity(autoencoder, mean_code: np.ndarray, delta: float = DEFAULT_DELTA
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """decode(z̄), decode(z̄ + δ e_d) and decode(z̄ − δ e_d) for every d: (n_E, n_Q), (L, …), (L, …)."""
    autoencoder.eval()
    z0 = torch.as_tensor(np.asarray(mean_code, float), dtype=torch.float32)
    L = z0.shape[0]
    eye = torch.eye(L, dtype=torch.float32) * float(delta)
    base = autoencoder.decode(z0[None])[0].numpy().astype(float)
    plus = autoencoder.decode(z0[None] + eye).numpy().astype(float)
    minus = autoencoder.decode(z0[None] - eye).numpy().astype(float)
    return base, plus, minus


def analyse_latent(bundle, spectra: Spectrum, threshold: float = DEFAULT_THRESHOLD,
                   delta: float = DEFAULT_DELTA) -> LatentAnalysis:
    """Active dimensions, decoder sensitivity and correlations of ``bundle`` on ``spectra`` (a set or one)."""
    if not threshold >= 0:
        raise ValueError(f"threshold must be ≥ 0, got {threshold}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    if not spectra.grid.same_as(bundle.grid):
        raise ValueError(f"the spectra are on another grid (shape {spectra.grid.shape}) than the bundle "
                         f"(shape {bundle.grid.shape}): preprocess them onto the bundle's grid")
    mu, lv = bundle.encode(spectra)
    mu = np.atleast_2d(mu)
    lv = None if lv is None else np.atleast_2d(lv)
    ae = bundle.autoencoder
    L = mu.shape[1]
    if lv is not None:
        kl = kl_per_dimension(mu, lv)
        measure = "kl_nats"
    else:
        var = mu.var(0) if mu.shape[0] > 1 else np.zeros(L)
        kl = var / var.max() if var.max() > 0 else np.zeros(L)
        measure = "relative_code_variance"
    order = np.argsort(-kl, kind="stable")
    active = kl > threshold
    z0 = mu.mean(0)
    base, plus, minus = decoder_sensitivity(ae, z0, delta)
    m = bundle.grid.mask
    diff = (plus - minus)[:, m]
    rms = np.sqrt(np.mean(diff ** 2, axis=1))
    mx = np.max(np.abs(diff), axis=1)
    base_rms = float(np.sqrt(np.mean(base[m] ** 2)))
    rel = rms / base_rms if base_rms > 0 else np.full(L, np.nan)
    fc_corr, names = None, []
    temps = spectra.temperatures() if spectra.temperature is not None else None
    if spectra.force_constants is not None and mu.shape[0] > 1:
        y = np.asarray(spectra.force_constants, float)
        y = np.broadcast_to(y, (mu.shape[0], y.shape[-1]))
        cols, names = [y], list(spectra.names or [f"constant_{i}" for i in range(y.shape[-1])])
        if temps is not None and np.all(np.isfinite(temps)) and np.ptp(temps) > 0:
            cols.append(temps[:, None])
            names.append("T")
        fc_corr = _pearson(mu, np.concatenate(cols, axis=1))
    lat_corr = latent_correlation_matrix(mu) if mu.shape[0] > 1 else np.eye(L)
    return LatentAnalysis(family=ae.family, latent_dim=L, variational=lv is not None, n_spectra=mu.shape[0],
                          mu=mu, logvar=lv, kl=kl, activity_measure=measure, threshold=float(threshold),
                          active=active, order=order, delta=float(delta), mean_code=z0, base=base, plus=plus,
                          minus=minus, sensitivity_rms=rms, sensitivity_max=mx, sensitivity_relative=rel,
                          fc_correlation=fc_corr, fc_names=names, latent_correlation=lat_corr,
                          temperature=temps, grid=bundle.grid)


# --------------------------------------------------------------------------------------------- output
def write_csv(path: str | os.PathLike, header: list[str], rows: list[list[Any]]) -> Path:
    """A CSV table, written atomically; floats with 6 significant digits, NaN as 'nan'."""
    p = Path(path)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if not np.isfinite(v) else f"{float(v):.6g}"
        if isinstance(v, (np.integer, np.bool_)):
            return str(v.item())
        return v

    with atomic_path(p) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([fmt(v) for v in r])
    return p


def _heatmap(ax, mat: np.ndarray, xlabels: list[str], ylabels: list[str], title: str, annotate: bool) -> Any:
    im = ax.imshow(np.nan_to_num(mat, nan=0.0), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(xlabels)))
    ax.set_xticklabels(xlabels, fontsize=7, rotation=90 if len(xlabels) > 8 else 0)
    ax.set_yticks(range(len(ylabels)))
    ax.set_yticklabels(ylabels, fontsize=7)
    ax.set_title(title, fontsize=9)
    if annotate:
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=6)
    return im


def plot_latent_analysis(res: LatentAnalysis, out_dir: str | os.PathLike, prefix: str = "latent",
                         max_detail: int = 4) -> dict[str, str]:
    """PNG figures; returns {key: file name relative to ``out_dir``}."""
    from phonon_ml_core.report.plotting import _plt, save_figure

    plt = _plt()
    out = Path(out_dir)
    g = res.grid
    files: dict[str, str] = {}
    L = res.latent_dim
    # 1. activity per dimension (sorted)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * L + 2), 3.0))
    vals = res.kl[res.order]
    colors = ["C0" if res.active[d] else "0.7" for d in res.order]
    ax.bar(range(L), np.maximum(vals, 1e-12), color=colors)
    ax.axhline(res.threshold, color="r", ls="--", lw=1, label=f"threshold {res.threshold:g}")
    ax.set_xticks(range(L))
    ax.set_xticklabels([str(d) for d in res.order], fontsize=7, rotation=90 if L > 12 else 0)
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension (sorted)")
    ax.set_ylabel("mean KL (nats)" if res.variational else "relative code variance")
    ax.set_title(f"{res.family}, latent {L}: {res.n_active} active dimensions", fontsize=9)
    ax.legend(fontsize=7)
    files["activity"] = f"{prefix}_activity.png"
    save_figure(fig, out / files["activity"])
    # 2. Δ maps for every dimension (sorted by activity), one colour scale
    ncol = min(L, 6)
    nrow = int(np.ceil(L / ncol))
    diff = res.sensitivity
    lim = float(np.nanmax(np.abs(diff))) if np.any(np.isfinite(diff)) else 1.0
    lim = lim if lim > 0 else 1.0
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.1 * nrow), squeeze=False, constrained_layout=True)
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= L:
            ax.axis("off")
            continue
        d = res.order[k]
        im = ax.pcolormesh(g.q_edges, g.energy_edges, np.where(g.mask, diff[d], np.nan), cmap="RdBu_r",
                           vmin=-lim, vmax=lim, shading="flat")
        ax.set_title(f"z{d}: KL {res.kl[d]:.3g}, rms Δ {res.sensitivity_rms[d]:.3g}", fontsize=7)
        ax.tick_params(labelsize=6)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label=f"decode(z̄+{res.delta:g}e_d) − decode(z̄−{res.delta:g}e_d)")
    fig.supxlabel("|Q| (1/Å)", fontsize=8)
    fig.supylabel("Energy transfer (meV)", fontsize=8)
    files["sensitivity_maps"] = f"{prefix}_sensitivity_maps.png"
    save_figure(fig, out / files["sensitivity_maps"])
    # 3. the most active dimensions in detail (Fig. S2–S5): − / + reconstructions, Δ, |Q|-averaged curves
    top = [int(d) for d in res.order[:max(1, min(max_detail, L))]]
    fig, axes = plt.subplots(len(top), 4, figsize=(15, 2.8 * len(top)), squeeze=False, constrained_layout=True)
    finite = np.concatenate([res.plus[top][:, g.mask].ravel(), res.minus[top][:, g.mask].ravel()])
    vmin, vmax = np.nanpercentile(finite, [1, 99.5]) if finite.size else (0, 1)
    for row, d in zip(axes, top):
        for ax, img, lab in ((row[0], res.minus[d], f"z̄ − {res.delta:g} e_{d}"),
                             (row[1], res.plus[d], f"z̄ + {res.delta:g} e_{d}")):
            ax.pcolormesh(g.q_edges, g.energy_edges, np.where(g.mask, img, np.nan), vmin=vmin, vmax=vmax,
                          shading="flat", cmap="viridis")
            ax.set_title(f"decode({lab})", fontsize=8)
        dd = np.where(g.mask, diff[d], np.nan)
        loc = float(np.nanmax(np.abs(dd))) if np.any(np.isfinite(dd)) else 1.0
        loc = loc if loc > 0 else 1.0
        im = row[2].pcolormesh(g.q_edges, g.energy_edges, dd, cmap="RdBu_r", vmin=-loc, vmax=loc, shading="flat")
        row[2].set_title(f"Δ (dimension {d}, KL {res.kl[d]:.3g})", fontsize=8)
        fig.colorbar(im, ax=row[2])
        for a, lab, st in ((res.minus[d], "−", "--"), (res.base, "z̄", "-"), (res.plus[d], "+", ":")):
            with np.errstate(invalid="ignore"):
                curve = np.nanmean(np.where(g.mask, a, np.nan), axis=-1)
            row[3].plot(g.energy, curve, st, label=lab)
        row[3].set_xlabel("Energy transfer (meV)", fontsize=8)
        row[3].set_title("|Q|-averaged", fontsize=8)
        row[3].legend(fontsize=7)
        for ax in row[:3]:
            ax.set_xlabel("|Q| (1/Å)", fontsize=8)
            ax.set_ylabel("E (meV)", fontsize=8)
    files["sensitivity_detail"] = f"{prefix}_sensitivity_detail.png"
    save_figure(fig, out / files["sensitivity_detail"])
    # 4. correlations
    dims = [f"z{d}" for d in range(L)]
    if res.fc_correlation is not None:
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(res.fc_names), 1.2 + 0.25 * L))
        im = _heatmap(ax, res.fc_correlation, res.fc_names, dims, "Pearson r: latent means vs labels", L <= 30)
        fig.colorbar(im, ax=ax)
        files["fc_correlation"] = f"{prefix}_fc_correlation.png"
        save_figure(fig, out / files["fc_correlation"])
    if res.latent_correlation is not None:
        fig, ax = plt.subplots(figsize=(2.0 + 0.3 * L, 1.6 + 0.3 * L))
        im = _heatmap(ax, res.latent_correlation, dims, dims, "Pearson r between latent means", L <= 12)
        fig.colorbar(im, ax=ax)
        files["latent_correlation"] = f"{prefix}_latent_correlation.png"
        save_figure(fig, out / files["latent_correlation"])
    return files


def write_latent_analysis(res: LatentAnalysis, out_dir: str | os.PathLike, prefix: str = "latent",
                          figures: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """CSV tables, PNG figures and ``<prefix>_summary.json`` in ``out_dir`` (created); returns the summary
    with a ``files`` entry listing what was written (names relative to ``out_dir``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    rank = np.empty(res.latent_dim, int)
    rank[res.order] = np.arange(res.latent_dim)
    files["activity_csv"] = f"{prefix}_activity.csv"
    write_csv(out / files["activity_csv"],
              ["rank", "dimension", res.activity_measure, "active", "mean_mu", "std_mu", "mean_sigma",
               "sensitivity_rms", "sensitivity_max", "sensitivity_relative"],
              [[int(rank[d]), int(d), res.kl[d], bool(res.active[d]), res.mu[:, d].mean(), res.mu[:, d].std(),
                float(np.exp(0.5 * res.logvar[:, d]).mean()) if res.logvar is not None else float("nan"),
                res.sensitivity_rms[d], res.sensitivity_max[d], res.sensitivity_relative[d]]
               for d in res.order])
    if res.fc_correlation is not None:
        files["fc_correlation_csv"] = f"{prefix}_fc_correlation.csv"
        write_csv(out / files["fc_correlation_csv"], ["dimension", *res.fc_names],
                  [[int(d), *res.fc_correlation[d]] for d in range(res.latent_dim)])
    if res.latent_correlation is not None:
        files["latent_correlation_csv"] = f"{prefix}_latent_correlation.csv"
        write_csv(out / files["latent_correlation_csv"], ["dimension", *[f"z{d}" for d in range(res.latent_dim)]],
                  [[int(d), *res.latent_correlation[d]] for d in range(res.latent_dim)])
    if figures:
        files.update(plot_latent_analysis(res, out, prefix))
    summary = {**res.summary(), **(extra or {}), "files": files}
    files["summary_json"] = f"{prefix}_summary.json"
    write_json(out / files["summary_json"], summary)
    return summary
