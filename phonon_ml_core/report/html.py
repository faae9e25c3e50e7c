"""The evaluation's self-contained HTML report (tables inline, figures by relative links)."""
from __future__ import annotations

import html
from typing import Any

import numpy as np

from phonon_ml_core.report.tables import SEED_SPREAD, ModelRecord


def _table_html(header: list[str], rows: list[list[Any]], highlight: int | None = None) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "–" if not np.isfinite(v) else f"{float(v):.4g}"
        return html.escape(str(v))
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = []
    for k, r in enumerate(rows):
        cls = ' class="best"' if highlight is not None and k == highlight else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(src: str, caption: str) -> str:
    return (f'<figure><a href="{html.escape(src)}"><img src="{html.escape(src)}" alt="{html.escape(caption)}"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


CSS = ("body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:0.5em 0 1.2em;font-size:0.85em}"
       "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}th{background:#eee}"
       "tr.best{background:#e6f3e6}img{max-width:100%;border:1px solid #ddd}"
       "figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}code{background:#f4f4f4}"
       ".note{font-size:0.85em;color:#555}")



def _range_text(r: list[float] | None, unit: str) -> str:
    return "unknown" if not r or any(v is None for v in r) else f"{r[0]:.3g}–{r[1]:.3g}{unit}"


def _targets_html(t: dict[str, Any]) -> list[str]:
    """The study's claims on this run (:func:`study_targets`) as an HTML list."""
    if not t:
        return []
    e = html.escape
    items = []
    g = t.get("fcvae_gap_to_fit")
    if g:
        items.append(f"best fine-tuned FCVAE ({e(g['model'])}) − fit benchmark: {g['gap']:+.4f} NMSE "
                     f"(target ≤ {g['target']:g}): <b>{'met' if g['met'] else 'not met'}</b>")
    bt = t.get("best_fine_tuned", {})
    if "fcvae" in bt and t.get("fcvae_better_than"):
        v = bt["fcvae"]["mean_nmse"]
        vs = "; ".join(f"{f.upper()} {bt[f]['mean_nmse']:.4f}: Δ = {v - bt[f]['mean_nmse']:+.4f}, "
                       + ("within the seed spread" if abs(v - bt[f]["mean_nmse"]) < SEED_SPREAD
                          else ("lower" if ok else "higher"))
                       for f, ok in t["fcvae_better_than"].items())
        items.append(f"best fine-tuned FCVAE {v:.4f} against the best fine-tuned {e(vs)}")
    mono = t.get("fcvae_1xx_non_increasing")
    if mono:
        items.append("FCVAE rows with 1XX non-increasing in T: "
                     + e(", ".join(k for k, v in mono.items() if v) or "none") + f" (of {len(mono)})")
    if not items:
        return []
    return ["<h3>The study's claims on this run</h3><p class='note'>One training seed: differences below ≈ "
            f"{SEED_SPREAD:g} NMSE are within the seed spread (docs/evaluation.md, benchmarks/seeds.py).</p><ul>"
            + "".join(f"<li>{i}</li>" for i in items) + "</ul>"]


def render_report(summary: dict[str, Any], nmse_header: list[str], nmse_rows: list[list[Any]],
                  r2_header: list[str], r2_rows: list[list[Any]], best: ModelRecord | None) -> str:
    """The self-contained HTML report (tables inline, figures by relative links)."""
    e = html.escape
    b = summary["budget"]
    parts = [(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>phonon-ml evaluation</title>"
              f"<style>{CSS}</style></head><body>"),
             "<h1>phonon-ml evaluation: the study's comparison</h1>",
             (f"<p>Budget <b>{e(b['name'])}</b>: {summary['simulated']['n']} simulated spectra "
             f"({summary['simulated']['n_train']} for training, {summary['simulated']['n_test']} held out; "
             f"T {_range_text(summary['simulated']['temperature_range'], ' K')}, "
             f"γ {_range_text(summary['simulated']['linewidth_range'], '')}), "
             f"families {e(', '.join(b['families']))}, latent sizes "
             f"{e(', '.join(str(d) for d in b['latent_dims']))}, strategies {e(', '.join(summary['strategies']))}; "
             f"epochs pretrain/finetune/extended/regressor {b['pretrain_epochs']}/{b['finetune_epochs']}/"
             f"{b['extended_epochs']}/{b['regressor_epochs']} (Adam, early stopping); seed {summary['seed']}. "
             f"Total {summary['seconds']['total']:.0f} s. Details: <a href='summary.json'>summary.json</a>.</p>")]
    if summary.get("material"):
        m, x = summary["material"], summary["experiment"]
        parts.append(f"<p>Material <b>{e(m['name'])}</b> ({e(m['lattice'])}, {m['n_shells']} shells; constants "
                     f"{e(', '.join(summary['names']))}) on {e(x['instrument'])}, {e(x['chopper_package'])} at "
                     f"{x['chopper_frequency']} Hz, Ei = {x['ei_mev']:g} meV.</p>")
    for n in summary["notes"]:
        parts.append(f"<p class='note'>Note: {e(n)}</p>")
    if summary["measured"]:
        parts.append("<p>Measured spectra: " + e(", ".join(f"{m['name']} ({m['temperature']:g} K)"
                                                             for m in summary["measured"])) + "</p>")
    parts.append("<h2>Table 1: NMSE on the measured spectra</h2>")
    if nmse_rows:
        hi = None
        if best is not None:
            hi = next((k for k, r in enumerate(nmse_rows) if r[0] == best.name), None)
        parts.append("<p class='note'>NMSE = Σ(x−y)²/Σx² over valid pixels between each measured spectrum and the "
                     "spectrum simulated from the predicted constants and linewidth γ (mean over latent draws) or from "
                     "the fitted constants (fits with γ free, the `phonon-ml fit` defaults); both with the same "
                     "nuisance model, the best residual background slope b1·(E − Ē) added to the simulation "
                     "(profiled for the ML rows, fitted for the fits). <i>mean_nmse_no_background</i>: the ML "
                     "rows without it. <i>mean_recon_nmse</i>: the "
                     "autoencoder's own reconstruction of the measured spectrum. The best model is highlighted. "
                     "Fine-tuned and extended models have seen these spectra (without labels), as in the study. "
                     "<i>train_seconds</i> counts shared stages once (pretraining in the first strategy of a "
                     "family × latent size, fine-tuning in the second); for a fit row, that method's total fit time. "
                     "<a href='table1_nmse.csv'>CSV</a></p>")
        parts.append(_table_html(nmse_header, nmse_rows, hi))
    else:
        parts.append("<p>No measured spectra.</p>")
    if "nmse" in summary["figures"]:
        parts.append(_img(summary["figures"]["nmse"], "Mean NMSE per model (colour: strategy) and the fit benchmark"))
    parts.extend(_targets_html(summary.get("targets") or {}))
    parts.append("<h2>Accuracy on the simulated test set</h2>"
                 "<p class='note'>Coefficient of determination R² and RMSE (N/m) per constant, regressor at the "
                 "posterior mean, on held-out simulated spectra. <a href='r2_simulated_test.csv'>CSV</a></p>")
    parts.append(_table_html(r2_header, r2_rows))
    figs = summary["figures"]
    if "fig2" in figs:
        parts.append("<h2>Fig. 2: measured vs simulated intensity across temperatures</h2>")
        parts.append(_img(figs["fig2"], "|Q|-averaged χ'' (points: measured; solid: simulated from the best model's "
                                        "prediction; dashed: from the fit); NMSE per temperature on the right"))
    if "fig3" in figs:
        parts.append("<h2>Fig. 3: force constants vs temperature</h2>")
        parts.append(_img(figs["fig3"], "Constants vs T; error bars: std over latent draws (ML) and Gauss–Newton std "
                                        "(fit, a lower bound: residuals are dominated by model error)"))
        parts.append(_img(figs["fig3_1xx"], "The dominant constant 1XX vs T with a weighted linear trend"))
        mono = summary["monotonicity_1XX"]
        rows = []
        for key in ("ml", "fit"):
            m = mono.get(key)
            if m:
                rows.append([m.get("model", "fit") if key == "ml" else "fit", "yes" if m["non_increasing"] else "no",
                             m["n_increasing_steps"], m.get("n_significant_increasing_steps", ""),
                             m["spearman_rho"], m["slope_per_100K"], m["slope_std_per_100K"]])
        if rows:
            parts.append("<p>Monotonicity of 1XX (softening on heating is expected):</p>")
            parts.append(_table_html(["source", "non-increasing", "rising steps", "rises beyond error bars",
                                      "Spearman ρ", "slope (N/m per 100 K)", "± std"], rows))
        allm = mono.get("ml_all_models")
        if allm:
            parts.append("<p class='note'>1XX non-increasing with T, per model: " +
                         e(", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in allm.items())) + "</p>")
        parts.append("<p><a href='force_constants_vs_T.csv'>Constants vs T (CSV, all models and the fit)</a></p>")
    lat = summary.get("latent")
    if lat:
        f = lat["files"]
        parts.append(f"<h2>Fig. 4 and S2–S5: latent analysis of {e(str(lat.get('model')))}</h2>")
        parts.append(f"<p>{lat['n_spectra']} simulated test spectra; {lat['n_active']} of {lat['latent_dim']} "
                     f"dimensions active ({e(lat['activity_measure'])} &gt; {lat['threshold']:g}); "
                     "active, by decreasing KL: "
                     f"{e(', '.join(f'z{d}' for d in lat['active_dimensions']))}. Tables: "
                     f"<a href='{e(f['activity_csv'])}'>activity &amp; sensitivity</a>"
                     + (f", <a href='{e(f['fc_correlation_csv'])}'>latent–constant correlation</a>"
                        if "fc_correlation_csv" in f else "")
                     + f", <a href='{e(f['latent_correlation_csv'])}'>latent–latent correlation</a>.</p>")
        best_dims = lat.get("most_correlated_dimension") or {}
        if best_dims:
            parts.append(_table_html(["label", "most correlated dimension", "Pearson r"],
                                     [[k, f"z{v['dimension']}", v["r"] if v["r"] is not None else float("nan")]
                                      for k, v in best_dims.items()]))
        for key, cap in (("activity", "Mean KL per latent dimension (sorted), threshold dashed"),
                         ("sensitivity_maps", (f"decode(z̄ + {lat['delta']:g} e_d) − decode(z̄ − {lat['delta']:g} "
                                               "e_d) per dimension (Fig. S2–S5 equivalents)")),
                         ("sensitivity_detail", ("Most active dimensions: decoded spectra at z̄ ± δ e_d, their "
                                                 "difference and |Q|-averaged curves")),
                         ("fc_correlation", "Pearson correlation of latent means with the force constants (and T)"),
                         ("latent_correlation", "Pearson correlation between latent dimensions")):
            if key in f:
                parts.append(_img(f[key], cap))
        if "fig4_measured" in figs:
            parts.append(_img(figs["fig4_measured"], "Measured spectra: latent means (± posterior σ) on the most "
                                                     "active dimensions vs T"))
    parts.append("</body></html>")
    return "\n".join(parts)
