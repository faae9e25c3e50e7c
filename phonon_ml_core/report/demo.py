"""The end-to-end demonstration behind ``phonon-ml demo``, for any material and experiment.

Simulates measured-like data from known constants (:mod:`.demo_data`: S(|Q|,E) on a finer, Mantid-like grid with
instrument resolution, an energy-dependent background and counting noise, saved as Mantid processed-NeXus files),
then runs the whole workflow on them: read, preprocess onto the default grid for the Ei, predict (the shipped
bundle for aluminium on the standard experiment, else a small bundle trained on the spot, :mod:`.demo_model`),
fit with Nelder–Mead and the gradient method, and write a report comparing the recovered constants with the true
ones. Aluminium on ARCS at 50 meV is the default and unchanged. With ``inputs`` it runs on the user's files.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.data.jsonio import write_json
from phonon_ml_core.report.demo_data import DEMO_TEMPERATURES, DEMO_TRUE_FC, demo_truth, make_measured_like, raw_grid
from phonon_ml_core.report.demo_model import SmallModelBudget, small_bundle
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material, get_material

__all__ = ["DEMO_TEMPERATURES", "DEMO_TRUE_FC", "DemoRecord", "demo_experiment", "make_measured_like", "raw_grid",
           "run_demo", "run_workflow"]


@dataclass
class DemoRecord:
    """What the workflow found for one spectrum."""

    name: str
    temperature: float
    preprocess_note: str = ""
    predicted: dict[str, Any] | None = None
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)


def demo_experiment(instrument: str | None = None, ei_mev: float | None = None) -> Experiment:
    """The demo's experiment: the standard one unless an instrument or Ei is named (then its defaults)."""
    if instrument is None and ei_mev is None:
        return STANDARD_EXPERIMENT
    return Experiment.create(instrument=instrument or STANDARD_EXPERIMENT.instrument, ei_mev=ei_mev)


def run_workflow(inputs: Sequence[Path], out_dir: Path, truth: np.ndarray | None, methods: Sequence[str],
                 predict: bool = True, temperature: float | None = None, n_samples: int = 10000,
                 log=print, material: Material | None = None, bundle: Any | None = None,
                 notes: list[str] | None = None) -> list[DemoRecord]:
    """Read → preprocess → predict → fit each input; figures and records in ``out_dir``.

    The fits are those of ``phonon-ml fit`` (γ and a background slope free) started from the reference
    constants, independently of the prediction, as in the study. ``temperature`` (K) overrides the files'.
    ``material`` None: aluminium with the legacy physics (the default demo, unchanged); ``bundle``: the model to
    predict with (default the shipped one).
    """
    from phonon_ml_core.prediction.predict import predict_spectra, resolve_bundle
    from phonon_ml_core.preprocess.measurement import read_measured
    from phonon_ml_core.preprocess.pipeline import preprocess_with_report
    from phonon_ml_core.report.plotting import plot_fit

    notes = [] if notes is None else notes
    if predict and bundle is None:
        bundle = resolve_bundle(None)
    records, ready_spectra = [], []
    for path in inputs:
        raw = read_measured(path)
        for k, one in enumerate(raw):
            name = Path(path).stem + (f"[{k}]" if raw.is_set else "")
            ready, report = preprocess_with_report(one, temperature=temperature, material=material)
            if ready.temperature is None or not np.all(np.isfinite(ready.temperature)):
                raise ValueError(f"{path}: the sample temperature is unknown (no SampleTemp log or temperature "
                                 "dataset): pass --temperature T (K)")
            ready.to_hdf5(out_dir / f"{name}_preprocessed.h5", overwrite=True)
            rec = DemoRecord(name=name, temperature=float(ready.temperature),
                             preprocess_note=", ".join(report.steps))
            log(f"{name}: preprocessed ({rec.preprocess_note}); {report.n_valid} valid pixels")
            records.append(rec)
            ready_spectra.append(ready)
    fit_kw = [{} if material is None else {"material": material, "experiment": r.experiment} for r in ready_spectra]
    tasks = [(ready, method, kw) for ready, kw in zip(ready_spectra, fit_kw) for method in methods]
    with DemoFits(tasks) as fits:   # the fits start in worker processes; the predictions run meanwhile
        if bundle is not None:
            for rec, ready in zip(records, ready_spectra):
                e = predict_spectra(bundle, [ready], n_samples=n_samples)[0]
                rec.predicted = {"force_constants": e["force_constants"].tolist(), "std": e["std"].tolist(),
                                 "nmse": e["nmse"]}
                log(f"{rec.name}: predicted {np.round(e['force_constants'], 2).tolist()} N/m, NMSE {e['nmse']:.3f}")
        results = iter(fits.results())
    for rec, ready in zip(records, ready_spectra):
        for method in methods:
            r = next(results)
            rec.fits[method] = {"force_constants": r.force_constants.tolist(), "std": r.std.tolist(),
                                "nmse": r.nmse, "seconds": r.seconds, "evaluations": r.evaluations,
                                "converged": r.converged}
            log(f"{rec.name}, {method}: {np.round(r.force_constants, 2).tolist()} N/m, NMSE {r.nmse:.3f}, "
                f"{r.seconds:.1f} s, {r.evaluations} simulator calls")
            if method == methods[0]:
                plot_fit(r, ready, out_dir / f"{rec.name}_fit.png")  # data, fit, residual maps; bound marks
    return records


def _fit_task(task: tuple) -> Any:
    """One demo fit (as `phonon-ml fit`: γ and a background slope free) of ``(spectrum, method, keywords)``."""
    from phonon_ml_core.fitting.spectrum_fit import fit_spectrum

    spectrum, method, kw = task
    return fit_spectrum(spectrum, method=method, fit_linewidth=True, fit_background=True, **kw)


class DemoFits:
    """The demo's fits (``(spectrum, method, keywords)`` tasks), started on entering and collected in task order by
    :meth:`results`. Each fit uses one core (its simulator calls are small), so with two or more cores they run in
    that many forked worker processes, the long Nelder–Mead fits first, while the caller does other work; results are
    the same as one after another (each fit is deterministic). Where processes cannot be forked (Windows, macOS
    default) or ``workers`` < 2 they run one after another in :meth:`results`."""

    def __init__(self, tasks: Sequence[tuple], workers: int | None = None):
        import multiprocessing
        import os

        self.tasks = list(tasks)
        workers = min(len(self.tasks), os.cpu_count() or 1) if workers is None else workers
        self.workers = workers if "fork" in multiprocessing.get_all_start_methods() else 1
        self._pool, self._futures = None, {}

    def __enter__(self) -> DemoFits:
        if self.workers >= 2:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("fork"))
            for i in sorted(range(len(self.tasks)), key=lambda i: self.tasks[i][1] != "nelder-mead"):
                self._futures[i] = self._pool.submit(_fit_task, self.tasks[i])
        return self

    def results(self) -> list:
        """The fit results, in task order (waits for the workers)."""
        if self._pool is None:
            return [_fit_task(t) for t in self.tasks]
        return [self._futures[i].result() for i in range(len(self.tasks))]

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def fit_all(tasks: Sequence[tuple], workers: int | None = None) -> list:
    """The demo's fits in task order (:class:`DemoFits`)."""
    with DemoFits(tasks, workers) as fits:
        return fits.results()


def _require_bundle() -> None:
    from phonon_ml_core.prediction.predict import bundle_search_paths, shipped_bundle_path

    if shipped_bundle_path() is None:
        raise FileNotFoundError("no shipped model bundle found (looked in " + ", ".join(
            str(p) for p in bundle_search_paths()) + "): reinstall phonon-ml from its repository (pip install .), "
            "or pass --no-predict to run the fits only")


def plot_constants(records: list[DemoRecord], truth: np.ndarray | None, path: Path,
                   names: Sequence[str] = ALUMINIUM.names) -> None:
    """Recovered constants (prediction and fits, with error bars) against the truth, one panel per constant."""
    from phonon_ml_core.report.plotting import _plt, save_figure

    plt = _plt()
    fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3.2), constrained_layout=True, squeeze=False)
    axes = axes[0]
    temps = np.array([r.temperature for r in records])
    methods = sorted({m for r in records for m in r.fits})
    sources = [("predicted", lambda r: r.predicted)] + [(m, _fit_getter(m)) for m in methods]
    for c, ax in enumerate(axes):
        for k, (label, get) in enumerate(sources):
            vals = [(t, get(r)) for t, r in zip(temps, records) if get(r) is not None]
            if not vals:
                continue
            t = np.array([v[0] for v in vals]) + 6 * (k - 1)
            y = np.array([v[1]["force_constants"][c] for v in vals])
            err = np.array([v[1]["std"][c] for v in vals])
            ax.errorbar(t, y, yerr=np.nan_to_num(err), fmt="os^"[k % 3], ms=4, capsize=2, label=label)
        if truth is not None:
            ax.axhline(truth[c], color="k", ls="--", lw=1, label="true")
        ax.set_title(names[c])
        ax.set_xlabel("T (K)")
    axes[0].set_ylabel("N/m")
    axes[0].legend(fontsize=7)
    save_figure(fig, path)


def _fit_getter(method: str):
    return lambda r: r.fits.get(method)


def write_report(records: list[DemoRecord], truth: np.ndarray | None, out_dir: Path, seconds: float,
                 material: Material = ALUMINIUM, experiment: Experiment | None = None,
                 notes: Sequence[str] = ()) -> Path:
    """summary.json and a short report.md with the table of recovered constants."""
    names = material.names
    summary = {"true_force_constants": None if truth is None else truth.tolist(),
               "names": list(names), "material": material.to_dict(),
               "experiment": None if experiment is None else experiment.to_dict(), "notes": list(notes),
               "seconds": seconds, "spectra": [r.__dict__ for r in records]}
    write_json(out_dir / "summary.json", summary)
    setting = "" if experiment is None else f" on {experiment.describe()}"
    lines = ["# phonon-ml demo", "", f"{material.name} ({material.lattice}){setting}.", "",
             f"Total time {seconds:.0f} s. Constants in N/m, order {', '.join(names)}.", "",
             *[f"Note: {n}" for n in notes], *([""] if notes else []), "![constants](constants.png)", "",
             "| spectrum | T (K) | source | " + " | ".join(names) + " | NMSE |",
             "|---|---|---|" + "---|" * (len(names) + 1)]
    if truth is not None:
        lines.append("| — | — | true | " + " | ".join(f"{v:.2f}" for v in truth) + " | — |")
    for r in records:
        rows = ([("predicted", r.predicted)] if r.predicted else []) + list(r.fits.items())
        for label, d in rows:
            cells = " | ".join(f"{v:.2f} ± {s:.2f}" for v, s in zip(d["force_constants"], d["std"]))
            lines.append(f"| {r.name} | {r.temperature:.0f} | {label} | {cells} | {d['nmse']:.3f} |")
    lines += ["", ("Figures: `constants.png` (recovered vs true), `<spectrum>_fit.png` (preprocessed spectrum "
                   "and the fitted simulation).")]
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return out_dir / "report.md"


def run_demo(out_dir: str | Path, inputs: Sequence[str | Path] | None = None, noise: float = 0.04,
             seed: int = 0, methods: Sequence[str] = ("nelder-mead", "gradient"), predict: bool = True,
             temperatures: Sequence[float] = DEMO_TEMPERATURES, temperature: float | None = None,
             n_samples: int = 10000, log=print, material: str | Material | None = None,
             instrument: str | None = None, ei_mev: float | None = None,
             small_model: SmallModelBudget | None = None) -> Path:
    """Run the demo (or the workflow on ``inputs``) and return the report path. ``temperature`` (K) overrides
    the input files' temperature; ``n_samples``: latent draws per spectrum for the prediction.

    ``material`` (default aluminium), ``instrument`` and ``ei_mev`` (default the standard experiment, else the
    instrument's defaults) choose what is simulated; for anything but aluminium on the standard experiment the
    prediction comes from a small bundle trained on the spot (``small_model``, default :class:`SmallModelBudget`).
    """
    if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"--temperature must be positive (K), got {temperature}")
    if int(n_samples) < 1:
        raise ValueError(f"the number of latent samples must be at least 1, got {n_samples}")
    given = None if material is None else get_material(material)   # None: aluminium, the legacy physics
    mat = ALUMINIUM if given is None else given
    experiment = demo_experiment(instrument, ei_mev)        # unknown names and bad settings fail here, first
    shipped = mat.same_as(ALUMINIUM) and experiment.same_as(STANDARD_EXPERIMENT)
    if predict and shipped:
        _require_bundle()   # before minutes of simulation
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = None
    notes: list[str] = []
    if not inputs:
        truth = demo_truth(mat)
        log(f"simulating measured-like {mat.name} S(|Q|,E) on {experiment.instrument} (Ei = {experiment.ei_mev:g} "
            f"meV) at {', '.join(f'{t:.0f}' for t in temperatures)} K from {np.round(truth, 3).tolist()} N/m")
        inputs = make_measured_like(out, temperatures, truth, noise, seed, material=given, experiment=experiment)
    else:
        missing = [str(p) for p in inputs if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"input file(s) not found: {', '.join(missing)}")
    bundle = None
    if predict and not shipped:
        bundle, note = small_bundle(mat, experiment, out, small_model or SmallModelBudget(), seed, log)
        notes.append(note)
        log(note)
        predict = bundle is not None
    records = run_workflow([Path(p) for p in inputs], out, truth, methods, predict=predict,
                           temperature=temperature if truth is None else None, n_samples=n_samples, log=log,
                           material=given, bundle=bundle, notes=notes)
    plot_constants(records, truth, out / "constants.png", mat.names)
    report = write_report(records, truth, out, time.perf_counter() - t0, mat, experiment, notes)
    log(f"report: {report} ({time.perf_counter() - t0:.0f} s)")
    return report
