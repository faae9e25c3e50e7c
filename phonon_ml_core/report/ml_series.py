"""Series view of machine-learning predictions beside fits: constants and frequencies against temperature.

A *track* is one way of getting the constants of a temperature series: the ML predictions (mean over latent samples
with their latent-sampling spread as a band), the independent per-spectrum fits (points with error bars), the joint
fit (a line through its points with its band). :func:`tracks_from_result` reads them from RESULT.json files of
``phonon-ml predict`` and ``phonon-ml fit`` (``--joint [--compare-independent]``); :func:`ml_series_figure` draws one
panel per constant, the highest zone-boundary frequency of each point, and the NMSE, all against T.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phonon_ml_core.data.fileio import atomic_path, check_output_path

#: How a track is drawn: "band" (ML: points, line and ±1σ band), "line" (joint fit), "points" (independent fits).
STYLES = ("band", "line", "points")


@dataclass
class SeriesTrack:
    """Constants (N/m) and zone-boundary frequencies (THz) of one method at each temperature (K) of a series."""

    label: str
    names: tuple[str, ...]
    temperature: np.ndarray          # (N,) K
    force_constants: np.ndarray      # (N, K) N/m
    std: np.ndarray                  # (N, K) N/m, NaN when unknown
    frequencies: list[dict]          # per entry {point: [3 THz ascending]}
    frequencies_std: list[dict | None]
    nmse: np.ndarray                 # (N,)
    style: str = "points"

    def sorted(self) -> SeriesTrack:
        """The same track in increasing temperature."""
        o = np.argsort(self.temperature)
        return SeriesTrack(self.label, self.names, self.temperature[o], self.force_constants[o], self.std[o],
                           [self.frequencies[i] for i in o], [self.frequencies_std[i] for i in o], self.nmse[o],
                           self.style)

    def highest_frequency(self, point: str) -> tuple[np.ndarray, np.ndarray]:
        """Highest branch frequency at ``point`` (THz) and its std (NaN when unknown), per entry."""
        f = np.array([fr[point][-1] for fr in self.frequencies], float)
        s = np.array([np.nan if sd is None or sd.get(point) is None or sd[point][-1] is None else sd[point][-1]
                      for sd in self.frequencies_std], float)
        return f, s


def track_from_entries(entries: Sequence[dict], label: str, style: str = "points") -> SeriesTrack:
    """A track from RESULT.json entries (each with temperature, names, force_constants, std, frequencies_thz)."""
    if style not in STYLES:
        raise ValueError(f"unknown track style {style!r}: choose one of {', '.join(STYLES)}")
    if not entries:
        raise ValueError(f"no entries for the track {label!r}")
    names = tuple(entries[0]["names"])
    if any(tuple(e["names"]) != names for e in entries):
        raise ValueError(f"the entries of {label!r} hold different constants: one material per series")
    t = np.array([np.nan if e.get("temperature") is None else e["temperature"] for e in entries], float)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"an entry of {label!r} has no temperature: a series needs the temperature of each input")

    def arr(key):
        return np.array([[np.nan if v is None else v for v in (e.get(key) or [None] * len(names))] for e in entries],
                        float)

    return SeriesTrack(label, names, t, arr("force_constants"), arr("std"),
                       [e["frequencies_thz"] for e in entries], [e.get("frequencies_std_thz") for e in entries],
                       np.array([np.nan if e.get("nmse") is None else e["nmse"] for e in entries], float),
                       style).sorted()


def ml_label(entries: Sequence[dict]) -> str:
    """The legend of predict's track: an ensemble's band also holds its members' disagreement."""
    return ("ML ensemble (members' mean ± total spread)" if any(e.get("member_spread") is not None for e in entries)
            else "ML (latent mean ± spread)")


def tracks_from_result(path: str | Path) -> list[SeriesTrack]:
    """Tracks in a RESULT.json: predict (a list: "ML"), fit (independent fits), fit --joint (joint, + independent)."""
    doc = json.loads(Path(path).read_text())
    if isinstance(doc, list):
        return [track_from_entries(doc, ml_label(doc), "band")]
    if not isinstance(doc, dict) or "results" not in doc:
        raise ValueError(f"{path} is not a RESULT.json of phonon-ml predict or fit")
    if str(doc.get("method", "")).startswith("joint"):
        out = [track_from_entries(doc["results"], f"{doc['method']} fit", "line")]
        if doc.get("independent"):
            out.append(track_from_entries(doc["independent"], "independent fits", "points"))
        return out
    return [track_from_entries(doc["results"], f"{doc.get('method', 'fit')} fits", "points")]


def _draw(ax, x, y, s, style, color, label, ls="-"):
    ok = np.isfinite(s)
    if style == "band":
        ax.plot(x, y, "o", ls=ls, color=color, label=label, ms=4)
        if ok.all():
            ax.fill_between(x, y - s, y + s, color=color, alpha=0.25)
    elif style == "line":
        ax.plot(x, y, "D", ls=ls, color=color, label=label, ms=4)
        if ok.all():
            ax.fill_between(x, y - s, y + s, color=color, alpha=0.15, hatch="//")
    else:
        ax.errorbar(x, y, yerr=np.where(ok, s, 0.0), fmt="s", color=color, capsize=3, mfc="none", label=label)


def ml_series_figure(tracks: Sequence[SeriesTrack], path: str | Path, overwrite: bool = False,
                     title: str | None = None) -> Path:
    """Write the side-by-side series figure of ``tracks`` (same constants) as a PNG, atomically."""
    if not tracks:
        raise ValueError("no tracks to draw")
    names = tracks[0].names
    for tr in tracks[1:]:
        if tr.names != names:
            raise ValueError(f"track {tr.label!r} has constants {', '.join(tr.names)}, the first has "
                             f"{', '.join(names)}: draw one material per figure")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = check_output_path(path, overwrite)
    n_panels, n_cols = len(names) + 2, 4
    n_rows = -(-n_panels // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4 * n_cols, 3.3 * n_rows), constrained_layout=True,
                             squeeze=False)
    for i, name in enumerate(names):
        ax = axes.flat[i]
        for j, tr in enumerate(tracks):
            _draw(ax, tr.temperature, tr.force_constants[:, i], tr.std[:, i], tr.style, f"C{j}", tr.label)
        ax.set_title(f"{name} (N/m)")
        ax.set_xlabel("T (K)")
        ax.set_ylabel("N/m")
        if i == 0:
            ax.legend(fontsize=7)
    ax = axes.flat[len(names)]
    points = list(tracks[0].frequencies[0])
    for j, tr in enumerate(tracks):
        for k, pt in enumerate(points):
            f, s = tr.highest_frequency(pt)
            _draw(ax, tr.temperature, f, s, tr.style, f"C{j}", tr.label if k == 0 else None, ("-", "--", ":")[k % 3])
            if j == 0:
                ax.annotate(pt, (tr.temperature[-1], f[-1]), xytext=(4, 0), textcoords="offset points", fontsize=9)
    ax.set_title("highest frequency at " + ", ".join(points) + " (THz)")
    ax.set_xlabel("T (K)")
    ax.set_ylabel("THz")
    ax.legend(fontsize=6)
    ax = axes.flat[len(names) + 1]
    for j, tr in enumerate(tracks):
        ax.plot(tr.temperature, tr.nmse, "o-" if tr.style != "points" else "s--", color=f"C{j}", label=tr.label)
    ax.set_title("NMSE against the spectrum")
    ax.set_xlabel("T (K)")
    ax.legend(fontsize=7)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return p
