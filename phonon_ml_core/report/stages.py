"""The stages of an evaluation run: the simulated set, the fit benchmark, training the strategies (sharing stages),
leave-one-out, and evaluating a bundle on the simulated test set and the measured spectra."""
from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from phonon_ml_core.data.normalization import nmse as nmse_fn
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.residual_background import profiled_nmse
from phonon_ml_core.report.budget import MEASURED_STRATEGIES, STRATEGIES, EvaluationBudget
from phonon_ml_core.report.tables import subset

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- stages
def nuisance_ranges(simulated: Spectrum) -> dict[str, list[float]]:
    """The temperature (K) and linewidth γ ranges actually present in a simulated set."""
    t = simulated.temperatures()
    t = t[np.isfinite(t)]
    g = simulated.linewidths() if simulated.linewidth is not None else np.zeros(1)
    g = g[np.isfinite(g)]
    return {"temperature_range": [float(t.min()), float(t.max())] if t.size else None,
            "linewidth_range": [float(g.min()), float(g.max())] if g.size else None}


def load_or_generate_simulated(output_dir: Path, budget: EvaluationBudget, data: str | os.PathLike | None,
                               seed: int, progress: bool) -> tuple[Spectrum, str]:
    """The simulated set: ``data`` when given, else generated (or reused) in ``output_dir``."""
    from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset

    if data is not None:
        s = Spectrum.from_hdf5(data)
        path = os.fspath(data)
    else:
        path = output_dir / (f"simulated_n{budget.n_simulated}_seed{seed}_T{budget.temperature_range[0]:g}-"
                             f"{budget.temperature_range[1]:g}_g{budget.linewidth_range[0]:g}-"
                             f"{budget.linewidth_range[1]:g}.h5")
        if not path.exists():
            log.info("simulating %d training spectra → %s", budget.n_simulated, path)
            cfg = SamplingConfig(temperature_range=tuple(budget.temperature_range),
                                 linewidth_range=tuple(budget.linewidth_range), seed=seed)
            generate_dataset(path, budget.n_simulated, cfg, progress=progress)
        else:
            log.info("reusing the simulated set %s", path)
        s = Spectrum.from_hdf5(path)
        path = os.fspath(path)
    if s.force_constants is None:
        raise ValueError(f"{path} has no force_constants: the evaluation needs a labelled simulated set")
    if not s.is_set or s.n_spectra < 10:
        raise ValueError(f"{path} holds {s.n_spectra} spectra: need a set of at least 10")
    return s, path


def run_fits(measured: Sequence[Spectrum], fit_kwargs: dict[str, Any], progress: bool,
             method: str = "gradient") -> list[Any]:
    """The benchmark: fit of every measured spectrum by ``method`` with a free linewidth and residual background
    slope (the `phonon-ml fit` defaults; ``fit_kwargs`` may override)."""
    from phonon_ml_core.fitting.spectrum_fit import fit_spectrum

    out = []
    for s in tqdm(measured, desc=f"fit benchmark ({method})", disable=not progress, leave=False):
        r = fit_spectrum(s, **{"method": method, "fit_linewidth": True, "fit_background": True, **fit_kwargs})
        log.info("%s fit T = %.0f K: NMSE %.4f, %d calls, %.1f s", method, r.temperature, r.nmse, r.evaluations,
                 r.seconds)
        out.append(r)
    return out


def train_strategies(simulated: Spectrum, measured: Spectrum | None, family: str, latent_dim: int,
                     budget: EvaluationBudget, strategies: Sequence[str], workdir: Path, seed: int,
                     resume: bool, progress: bool) -> dict[str, tuple[Any, float]]:
    """Train ``strategies`` for one family and latent size, sharing the pretrain/finetune stages.

    Returns {strategy: (TrainingResult, seconds)}.
    """
    from phonon_ml_core.learn.pipeline import train_pipeline

    workdir.mkdir(parents=True, exist_ok=True)
    if not resume:
        for f in workdir.glob("*.pt"):
            f.unlink()
    out: dict[str, tuple[Any, float]] = {}
    for strategy in [s for s in STRATEGIES if s in strategies]:
        cfg = strategy_config(family, latent_dim, budget, strategy, seed)
        ft, ext = cfg.finetune_epochs, cfg.extended_epochs
        for stage in ("regressor", "physics", "physics-finetune"):   # these depend on the strategy
            (workdir / f"{stage}.pt").unlink(missing_ok=True)
        if strategy == "extended" and ext == 0:
            log.warning("extended strategy with 0 extended epochs equals fine-tuned")
        t0 = time.perf_counter()
        log.info("training %s, latent %d, %s", family, latent_dim, strategy)
        res = train_pipeline(simulated, cfg, measured=measured if ft > 0 else None, workdir=workdir, resume=True,
                             progress=progress)
        out[strategy] = (res, time.perf_counter() - t0)
    return out


def strategy_config(family: str, latent_dim: int, budget: EvaluationBudget, strategy: str, seed: int):
    """The :class:`PipelineConfig` of one strategy under ``budget``."""
    from phonon_ml_core.learn.configs import PipelineConfig, StageConfig

    return PipelineConfig(
        family=family, latent_dim=latent_dim,
        pretrain=StageConfig(epochs=budget.pretrain_epochs, batch_size=budget.batch_size, patience=budget.patience),
        finetune_epochs=budget.finetune_epochs if strategy in MEASURED_STRATEGIES else 0,
        extended_epochs=budget.extended_epochs if strategy == "extended" else 0,
        regressor=StageConfig(epochs=budget.regressor_epochs, batch_size=128, patience=max(budget.patience, 30)),
        physics_steps=budget.physics_steps, physics_finetune_steps=budget.physics_finetune_steps,
        physics_background=bool(budget.physics_background),
        regressor_temperature=bool(budget.regressor_temperature), seed=seed)


def leave_one_out(simulated: Spectrum, measured: Spectrum, family: str, latent_dim: int, budget: EvaluationBudget,
                  workdir: Path, seed: int, progress: bool, resume: bool = False) -> dict[str, np.ndarray]:
    """The ``fine-tuned`` strategy with each measured spectrum in turn left out of the fine-tuning stages and
    then predicted: {'nmse', 'fc', 'std', 'linewidth'} per measured spectrum. Reuses ``workdir/pretrain.pt``."""
    from phonon_ml_core.learn.bundle import bundle_from_training
    from phonon_ml_core.learn.pipeline import train_pipeline

    cfg = strategy_config(family, latent_dim, budget, "fine-tuned", seed)
    parts: dict[str, list] = {"nmse": [], "fc": [], "std": [], "linewidth": [], "simulated": [],
                              "nmse_no_background": []}
    for k in tqdm(range(measured.n_spectra), desc="leave one out", disable=not progress, leave=False):
        fold = workdir / f"leave-out-{k}"
        if not resume:  # a fold left by an interrupted run is only reused with --resume
            shutil.rmtree(fold, ignore_errors=True)
        fold.mkdir(parents=True, exist_ok=True)
        if (workdir / "pretrain.pt").exists():
            shutil.copy2(workdir / "pretrain.pt", fold / "pretrain.pt")
        keep = np.array([i for i in range(measured.n_spectra) if i != k])
        res = train_pipeline(simulated, cfg, measured=subset(measured, keep), workdir=fold, resume=True,
                             progress=progress)
        ev = evaluate_measured(bundle_from_training(res, simulated.grid), subset(measured, np.array([k])),
                               budget.n_samples, seed)
        for key, values in parts.items():
            values.append(None if ev[key] is None else ev[key][0])
        shutil.rmtree(fold, ignore_errors=True)
    return {k: (None if any(v is None for v in vals) else np.array(vals)) for k, vals in parts.items()}


def evaluate_model(bundle: Any, test: Spectrum, measured: Spectrum | None, n_samples: int, seed: int
                   ) -> dict[str, Any]:
    """R²/RMSE per constant on the test set; predictions, their std and NMSE on the measured spectra."""
    from phonon_ml_core.learn.metrics import r2_score

    y = np.asarray(test.force_constants, float)
    y = np.broadcast_to(y, (test.n_spectra, y.shape[-1]))
    pred = bundle.predict(test, n_samples=1, seed=seed)["mean_code_prediction"]
    out: dict[str, Any] = {"r2": r2_score(y, pred), "rmse": np.sqrt(((pred - y) ** 2).mean(0))}
    if measured is not None:
        out.update(evaluate_measured(bundle, measured, n_samples, seed))
    return out


def simulator_of(bundle: Any, data: Spectrum) -> Any:
    """The (cached) simulator of the bundle's material and experiment (else the data's; aluminium and the standard
    experiment for files without them) on the data's grid and quantity."""
    material = getattr(bundle, "material", None) or data.material
    experiment = getattr(bundle, "experiment", None) or data.experiment
    try:
        from phonon_ml_core.simulator.factory import get_simulator
    except ImportError:   # until the simulator area's factory lands: the fits' cached simulator
        from phonon_ml_core.fitting.simulators import get_simulator as cached

        return cached(data.grid, data.quantity, material=material, experiment=experiment)
    return get_simulator(material=material, experiment=experiment, grid=data.grid, quantity=data.quantity)


def evaluate_measured(bundle: Any, measured: Spectrum, n_samples: int, seed: int) -> dict[str, Any]:
    """Predictions (mean over ``n_samples`` latent draws), their std, γ, and the NMSE of the spectra simulated
    from them (with the predicted γ) against the measured spectra: ``nmse`` with the best residual background
    slope added (the fit benchmark's nuisance model; ``simulated`` includes it), ``nmse_no_background``
    without; and the NMSE of the autoencoder reconstructions."""
    out: dict[str, Any] = {}
    p = bundle.predict(measured, n_samples=n_samples, seed=seed)
    fc, std = np.atleast_2d(p["mean"]), np.atleast_2d(p["std"])
    gamma = np.atleast_1d(p["linewidth"]) if "linewidth" in p else None
    sim = simulator_of(bundle, measured)
    temps = measured.temperatures()
    with torch.no_grad():
        ysim = sim(torch.as_tensor(fc, dtype=torch.float64), torch.as_tensor(temps, dtype=torch.float64),
                   linewidth=None if gamma is None else torch.as_tensor(gamma, dtype=torch.float64),
                   allow_unstable=True).numpy()
    x = np.asarray(measured.normalized().intensity, float).reshape(-1, *measured.grid.shape)
    m = measured.grid.mask
    with np.errstate(invalid="ignore"):
        out["nmse_no_background"] = np.asarray(nmse_fn(x, ysim, m), float)
        # the fit benchmark's nuisance model: the best residual background slope added to the simulation
        out["nmse"], _, ysim = profiled_nmse(x, ysim, measured.grid)
        with torch.no_grad():
            xt = torch.as_tensor(x, dtype=torch.float32)
            mu, _ = bundle.autoencoder.encode(xt)
            rec = bundle.autoencoder.decode(mu).numpy().astype(float)
            xs = bundle.autoencoder.model_space(xt).numpy().astype(float)  # what the network reconstructs
        out["recon_nmse"] = np.array([nmse_fn(xs[i], rec[i], m) for i in range(len(x))])
    out.update({"fc": fc, "std": std, "simulated": ysim, "linewidth": gamma})
    return out

