"""The study's comparison, end to end (issue 7; docs/evaluation.md): ``phonon-ml evaluate``.

1. A simulated, labelled set (``generate_dataset``: the study's sampling rule, T uniform in 40–660 K and
   γ in 0–0.06 as nuisance variation) is split into training and held-out test spectra.
2. For every family × latent size, the strategies are trained with :func:`train_pipeline`:
   ``sim-only`` (pretrain + regressor), ``fine-tuned`` (pretrain + fine-tuning on the measured spectra
   + regressor) and ``extended`` (… + extended training on the simulated set + regressor). They share
   stages through the pipeline's checkpoints: the completed ``pretrain`` / ``finetune`` checkpoints in
   one work folder are resumed (bit-identical to retraining), only the regressor checkpoint is removed
   between strategies.
3. The fit benchmarks: one fit per method of ``fit_methods`` (gradient; Nelder–Mead, the study's) with a
   free linewidth and residual background slope (``fit_spectrum(method=..., fit_linewidth=True,
   fit_background=True)``, the CLI defaults).
4. Tables: NMSE per model on the measured spectra against the fit (Table 1), R² per constant on the
   simulated test set; figures: |Q|-averaged intensity vs T (Fig. 2), constants vs T with error bars and
   the monotonicity of 1XX (Fig. 3), latent analysis of the FCVAE (Fig. 4, S2–S5; :mod:`.latent`).
5. ``report.html`` (tables inline, relative links to the PNGs), CSV tables and ``summary.json``.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.jsonio import to_jsonable, write_json
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.report.budget import (
    BUDGETS,
    FIT_METHODS,
    MEASURED_STRATEGIES,
    SHARED_DATA_NAME,
    SHARED_TEMPERATURES,
    STRATEGIES,
    EvaluationBudget,
    check_budget,
    default_measured_files,
    get_budget,
)
from phonon_ml_core.report.figures import plot_force_constants, plot_intensity, plot_measured_latent, plot_nmse_bars
from phonon_ml_core.report.html import render_report
from phonon_ml_core.report.latent import analyse_latent, write_csv, write_latent_analysis
from phonon_ml_core.report.stages import (
    evaluate_measured,
    evaluate_model,
    leave_one_out,
    load_or_generate_simulated,
    nuisance_ranges,
    run_fits,
    strategy_config,
    train_strategies,
)
from phonon_ml_core.report.tables import (
    SEED_SPREAD,
    TARGET_GAP,
    ModelRecord,
    force_constant_table,
    monotonicity,
    monotonicity_of_first,
    nmse_table,
    r2_table,
    study_targets,
    subset,
)
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT

__all__ = ["BUDGETS", "FIT_METHODS", "MEASURED_STRATEGIES", "SEED_SPREAD", "SHARED_DATA_NAME", "SHARED_TEMPERATURES",
           "STRATEGIES", "TARGET_GAP", "EvaluationBudget", "ModelRecord", "check_budget", "default_measured_files",
           "evaluate_measured", "evaluate_model", "get_budget", "leave_one_out", "monotonicity", "run_evaluation",
           "run_fits", "strategy_config", "study_targets", "subset", "train_strategies"]

log = logging.getLogger(__name__)


def run_evaluation(output_dir: str | os.PathLike, measured_files: Sequence[str | os.PathLike] | None = None,
                   data: str | os.PathLike | None = None, budget: EvaluationBudget | str = "quick",
                   seed: int = 0, resume: bool = False, save_models: bool = True, progress: bool = True,
                   latent_threshold: float = 0.01, max_latent_spectra: int = 2000) -> dict[str, Any]:
    """Run the comparison and write the report into ``output_dir``; returns the summary dict.

    Args:
        output_dir: report folder (created; files in it are replaced).
        measured_files: measured spectra (our .h5) on the simulated set's grid; None = the shared
            ARCS files when present. An empty list runs the simulated part only (``sim-only`` models).
        data: a labelled simulated set; None = generate ``budget.n_simulated`` spectra (reused if present).
        budget: "quick", "full" or an :class:`EvaluationBudget`.
        resume: keep the training checkpoints of an earlier, interrupted run in ``output_dir/work``.
        save_models: write each trained bundle to ``output_dir/models/<family>-<latent>-<strategy>``.
    """
    from phonon_ml_core.learn.bundle import bundle_from_training
    from phonon_ml_core.learn.inputs import onto_model_grid
    from phonon_ml_core.readers import read_spectrum

    t_start = time.perf_counter()
    b = get_budget(budget) if isinstance(budget, str) else check_budget(budget)
    if not (np.isfinite(latent_threshold) and latent_threshold >= 0):
        raise ValueError(f"the latent activity threshold must be ≥ 0 (nats), got {latent_threshold}")
    if data is not None and not Path(data).exists():
        raise FileNotFoundError(f"simulated data set not found: {data}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.html").unlink(missing_ok=True)   # a failed rerun must not leave an old report beside new files
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    notes: list[str] = []

    # measured spectra
    files = default_measured_files() if measured_files is None else [Path(f) for f in measured_files]
    if measured_files is None and not files:
        notes.append("the shared measured spectra (../shared/data/al_arcs_ei50) were not found: simulated part only")
    elif measured_files is None and len(files) < len(SHARED_TEMPERATURES):
        have = {f.name for f in files}
        notes.append("shared measured spectra missing: " + ", ".join(
            f"al_{t}K.h5" for t in SHARED_TEMPERATURES if f"al_{t}K.h5" not in have))
    singles, names = [], []
    for f in files:
        s = read_spectrum(f)
        for i, one in enumerate(s):
            if one.temperature is None or not np.isfinite(one.temperature):
                raise ValueError(f"{f}: the measured spectrum has no temperature")
            one.force_constants = None
            singles.append(one.normalized())
            names.append(Path(f).stem if not s.is_set else f"{Path(f).stem}[{i}]")
    measured = None
    if singles:
        order = np.argsort([s.temperature for s in singles], kind="stable")
        singles = [singles[i] for i in order]
        names = [names[i] for i in order]
        measured = Spectrum.stack(singles)
    strategies = list(b.strategies)
    if measured is None and any(s in MEASURED_STRATEGIES for s in strategies):
        notes.append("no measured spectra: the fine-tuned and extended strategies were skipped")
        strategies = [s for s in strategies if s not in MEASURED_STRATEGIES]
    if not strategies:
        raise ValueError("no strategy left to train (fine-tuned/extended need measured spectra)")

    # simulated set and its held-out test split; the measured spectra are checked against its grid first
    # (before minutes of simulation when the set is generated on the standard grid)
    simulated = sim_path = None
    if data is not None:   # reading a given set is cheap: check against it
        simulated, sim_path = load_or_generate_simulated(out, b, data, seed, progress)
    if measured is not None:
        if simulated is None:   # a set to be generated is χ'' of aluminium on the standard experiment
            target_grid, target_quantity = STANDARD_EXPERIMENT.grid, "chi''"
        else:
            target_grid, target_quantity = simulated.grid, simulated.quantity
        if measured.quantity != target_quantity:
            raise ValueError(f"the measured spectra are {measured.quantity!r}, the simulated set {target_quantity!r}: "
                             "preprocess them (`phonon-ml preprocess`) to χ''")
        on_grid = []
        for name, one in zip(names, singles):
            try:
                on_grid.append(onto_model_grid(one, target_grid))
            except ValueError as exc:
                raise ValueError(f"measured spectrum {name}: {str(exc).replace('the model', 'the simulated set')}"
                                 ) from None
        singles = on_grid
        measured = Spectrum.stack(singles)
    if simulated is None:
        simulated, sim_path = load_or_generate_simulated(out, b, data, seed, progress)
    perm = np.random.default_rng(seed + 12345).permutation(simulated.n_spectra)
    n_test = max(1, round(b.test_fraction * simulated.n_spectra))
    names = simulated.names
    material = simulated.material or ALUMINIUM
    experiment = simulated.experiment or STANDARD_EXPERIMENT
    test = subset(simulated, np.sort(perm[:n_test]))
    train = subset(simulated, np.sort(perm[n_test:]))

    # fit benchmarks (the first method is the reference of the figures and comparisons)
    fits_by_method: dict[str, list[Any]] = {}
    fit_seconds_by_method: dict[str, float] = {}
    for method in (b.fit_methods if singles else ()):
        t0 = time.perf_counter()
        fits_by_method[method] = run_fits(singles, dict(b.fit), progress, method)
        fit_seconds_by_method[method] = time.perf_counter() - t0
    fits = fits_by_method.get(b.fit_methods[0], [])
    fit_seconds = sum(fit_seconds_by_method.values())

    # models
    records: list[ModelRecord] = []
    combos = [(f, d) for f in b.families for d in b.latent_dims]
    bar = tqdm(total=len(combos) * len(strategies), desc="models", disable=not progress)
    for family, dim in combos:
        trained = train_strategies(train, measured, family, dim, b, strategies, out / "work" / f"{family}-{dim}",
                                   seed, resume, progress)
        for strategy, (res, secs) in trained.items():
            bundle = bundle_from_training(res, simulated.grid, data={
                "simulated": {"path": os.path.abspath(sim_path), "n_train": train.n_spectra},
                "finetune": [os.path.abspath(f) for f in files] if strategy in MEASURED_STRATEGIES else []},
                quantity=simulated.quantity)
            path = None
            if save_models:
                (out / "models").mkdir(exist_ok=True)
                path = out / "models" / f"{family}-{dim}-{strategy}"
                wd = out / "work" / f"{family}-{dim}"
                bundle.save(path, overwrite=True, extra_files={"training_log.jsonl": wd / "training_log.jsonl",
                                                               "loss_curve.png": wd / "loss_curve.png"})
            ev = evaluate_model(bundle, test, measured, b.n_samples, seed)
            rec = ModelRecord(family, dim, strategy, bundle, None if path is None else os.fspath(path), secs,
                              ev["r2"], ev["rmse"], ev.get("fc"), ev.get("std"), ev.get("nmse"), ev.get("recon_nmse"),
                              ev.get("simulated"), ev.get("linewidth"), ev.get("nmse_no_background"))
            records.append(rec)
            log.info("%s: test R² %s; measured mean NMSE %.4f", rec.name,
                     " ".join(f"{v:.3f}" for v in rec.r2), rec.mean_nmse)
            bar.update(1)
        if (b.leave_one_out and family == "fcvae" and "fine-tuned" in trained and measured is not None
                and measured.n_spectra >= 3):
            t0 = time.perf_counter()
            loo = leave_one_out(train, measured, family, dim, b, out / "work" / f"{family}-{dim}", seed, progress,
                                resume)
            no_score = np.full(len(names), np.nan)
            records.append(ModelRecord(family, dim, "fine-tuned, left out", None, None, time.perf_counter() - t0,
                                       no_score, no_score, loo["fc"], loo["std"], loo["nmse"],
                                       np.full(measured.n_spectra, np.nan), loo["simulated"], loo["linewidth"],
                                       loo["nmse_no_background"]))
            log.info("%s: leave-one-out measured mean NMSE %.4f", records[-1].name, records[-1].mean_nmse)
        if not resume:
            shutil.rmtree(out / "work" / f"{family}-{dim}", ignore_errors=True)
    bar.close()
    if not resume:
        shutil.rmtree(out / "work", ignore_errors=True)

    # tables
    temps = measured.temperatures() if measured is not None else np.array([])
    fit_mean = float(np.mean([r.nmse for r in fits])) if fits else None
    nmse_header, nmse_rows = nmse_table(records, fits_by_method, fit_seconds_by_method, temps)
    write_csv(out / "table1_nmse.csv", nmse_header, nmse_rows)
    r2_header, r2_rows = r2_table(records, names, test.n_spectra)
    write_csv(out / "r2_simulated_test.csv", r2_header, r2_rows)
    ranked = sorted([r for r in records if r.nmse is not None and np.isfinite(r.mean_nmse) and r.bundle is not None],
                    key=lambda r: r.mean_nmse)
    best = ranked[0] if ranked else None
    write_csv(out / "force_constants_vs_T.csv",
              *force_constant_table(records, fits_by_method, b.fit_methods[0], temps, names))
    mono = monotonicity_of_first(temps, records, best, fits)

    # figures
    figs: dict[str, str] = {}
    if measured is not None:
        figs["fig2"] = "figures/fig2_intensity_vs_T.png"
        plot_intensity(measured, best, fits, out / figs["fig2"])
        figs["fig3"] = "figures/fig3_force_constants_vs_T.png"
        figs["fig3_1xx"] = "figures/fig3_1XX_vs_T.png"
        plot_force_constants(temps, best, fits, out / figs["fig3"], out / figs["fig3_1xx"], mono, names)
        figs["nmse"] = "figures/nmse_per_model.png"
        plot_nmse_bars(records, fit_mean, out / figs["nmse"])

    # latent analysis of the FCVAE (the best-scoring one; else the best model of any family)
    latent_summary = None
    with_bundle = [r for r in records if r.bundle is not None]
    vae = [r for r in (ranked or with_bundle) if r.family == "fcvae"] or (ranked or with_bundle)
    lrec = vae[0] if vae else None
    if lrec is not None:
        ls = test if test.n_spectra <= max_latent_spectra else subset(test, np.arange(max_latent_spectra))
        la = analyse_latent(lrec.bundle, ls, threshold=latent_threshold)
        latent_summary = write_latent_analysis(la, fig_dir, prefix="fig4_latent",
                                               extra={"model": lrec.name, "spectra": "simulated test set"})
        latent_summary["files"] = {k: f"figures/{v}" for k, v in latent_summary["files"].items()}
        if measured is not None:
            dims = [int(d) for d in la.order[:max(1, min(6, la.n_active or 3))]]
            figs["fig4_measured"] = "figures/fig4_measured_latent_vs_T.png"
            plot_measured_latent(lrec.bundle, measured, dims, out / figs["fig4_measured"])

    summary = {
        "budget": asdict(b), "seed": seed, "simulated": {"path": sim_path, "n": simulated.n_spectra,
                                                         "n_train": train.n_spectra, "n_test": test.n_spectra,
                                                         **nuisance_ranges(simulated)},
        "material": material.to_dict(), "experiment": experiment.to_dict(), "names": list(names),
        "measured": [{"name": n, "temperature": float(t)} for n, t in zip(names, temps)],
        "strategies": strategies, "notes": notes,
        "models": [{"name": r.name, "family": r.family, "latent_dim": r.latent_dim, "strategy": r.strategy,
                    "path": r.path, "train_seconds": r.train_seconds,
                    "r2": dict(zip(names, r.r2)), "rmse": dict(zip(names, r.rmse)),
                    "nmse": None if r.nmse is None else r.nmse, "mean_nmse": r.mean_nmse,
                    "nmse_no_background": r.nmse_no_background, "recon_nmse": r.recon_nmse,
                    "force_constants": r.fc, "std": r.std} for r in records],
        "fit": [{"temperature": f.temperature, "force_constants": f.force_constants, "std": f.std, "nmse": f.nmse,
                 "linewidth": f.linewidth, "evaluations": f.evaluations, "seconds": f.seconds,
                 "converged": f.converged} for f in fits],
        "fit_method": b.fit_methods[0] if fits else None,
        "fit_mean_nmse_by_method": {m: float(np.mean([r.nmse for r in v])) for m, v in fits_by_method.items()},
        "fit_mean_nmse": fit_mean, "best_model": None if best is None else best.name,
        "monotonicity_1XX": mono, "targets": study_targets(records, fit_mean, temps), "latent": latent_summary,
        "figures": figs,
        "tables": {"nmse": "table1_nmse.csv", "r2": "r2_simulated_test.csv",
                   "force_constants": "force_constants_vs_T.csv"},
        "seconds": {"total": time.perf_counter() - t_start, "fits": fit_seconds},
    }
    summary = to_jsonable(summary)
    write_json(out / "summary.json", summary)
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(render_report(summary, nmse_header, nmse_rows, r2_header, r2_rows, best))
    log.info("report written to %s", out / "report.html")
    return summary
