"""What an evaluation run simulates and trains (:class:`EvaluationBudget`, the named budgets) and where the shared
measured spectra are."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from phonon_ml_core.learn.defaults import FAMILIES, check_latent_dim

STRATEGIES: tuple[str, ...] = ("sim-only", "fine-tuned", "extended")
MEASURED_STRATEGIES = ("fine-tuned", "extended")
SHARED_DATA_NAME = Path("shared") / "data" / "al_arcs_ei50"
SHARED_TEMPERATURES = (50, 280, 350, 540, 640)
FIT_METHODS = ("gradient", "nelder-mead")


@dataclass
class EvaluationBudget:
    """How much to simulate and train. ``quick``: minutes; ``full``: the study's grid of models.

    Attributes:
        n_simulated: simulated spectra (generated when no data set is given).
        test_fraction: held out of training for the R² table (seeded).
        families, latent_dims, strategies: the models compared.
        pretrain_epochs, finetune_epochs, extended_epochs, regressor_epochs: stage lengths (Adam with
            cosine decay and early stopping, docs/training.md).
        batch_size, patience: autoencoder batch size and early-stopping patience.
        physics_steps, physics_finetune_steps: steps of the regressor's simulator-consistency stages on the
            simulated and on the measured spectra (:mod:`phonon_ml_core.learn.consistency`).
        physics_background: those stages compare with the best residual background slope added, as the fit
            benchmark does (``PipelineConfig.physics_background``).
        regressor_temperature: regressors that also take the sample temperature (``PipelineConfig``).
        leave_one_out: also evaluate every FCVAE ``fine-tuned`` model with each measured spectrum held out of
            its fine-tuning (one retraining of the fine-tuning stages per spectrum): NMSE on unseen data.
        n_samples: latent draws per measured spectrum for the prediction mean and std.
        fit_methods: fit benchmarks, one Table 1 row each ("gradient", "nelder-mead"); the first is the reference
            of the figures and of the comparisons.
        fit: keyword arguments of :func:`fit_spectrum` for the benchmark (besides method/linewidth).
        temperature_range, linewidth_range: nuisance ranges of the generated set.
    """

    name: str = "quick"
    n_simulated: int = 1000
    test_fraction: float = 0.1
    families: tuple[str, ...] = ("fcvae",)
    latent_dims: tuple[int, ...] = (10,)
    strategies: tuple[str, ...] = STRATEGIES
    pretrain_epochs: int = 200
    finetune_epochs: int = 50
    extended_epochs: int = 50
    regressor_epochs: int = 300
    batch_size: int = 64
    patience: int = 20
    physics_steps: int = 0
    physics_finetune_steps: int = 100
    physics_background: bool = True
    regressor_temperature: bool = False
    leave_one_out: bool = False
    n_samples: int = 2000
    fit_methods: tuple[str, ...] = ("gradient",)
    fit: dict[str, Any] = field(default_factory=dict)
    temperature_range: tuple[float, float] = (40.0, 660.0)
    linewidth_range: tuple[float, float] = (0.0, 0.06)


BUDGETS: dict[str, EvaluationBudget] = {
    "quick": EvaluationBudget(),
    # the study's grid of 36 models (4 families × 3 latent sizes × 3 strategies) in about an hour on 2 CPU
    # cores: the CNN autoencoder epochs dominate (≈ 3.9 ms per spectrum and epoch against ≈ 0.4 ms for FC)
    "full": EvaluationBudget(name="full", n_simulated=4000, families=FAMILIES, latent_dims=(30, 10, 3),
                             pretrain_epochs=20, finetune_epochs=50, extended_epochs=5, regressor_epochs=100,
                             physics_steps=0, leave_one_out=True, n_samples=10000,
                             fit_methods=("gradient", "nelder-mead")),
}


def get_budget(name: str, **overrides: Any) -> EvaluationBudget:
    """A named budget with fields replaced by the non-None ``overrides``."""
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}: choose one of {', '.join(BUDGETS)}")
    kw = {k: v for k, v in overrides.items() if v is not None}
    return check_budget(replace(BUDGETS[name], **kw))


def check_budget(b: EvaluationBudget) -> EvaluationBudget:
    """``b`` validated (ValueError naming the field and the fix), latent sizes normalised."""
    for f in b.families:
        if f not in FAMILIES:
            raise ValueError(f"unknown model family {f!r}: choose from {', '.join(FAMILIES)}")
    for s in b.strategies:
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}: choose from {', '.join(STRATEGIES)}")
    b = replace(b, latent_dims=tuple(check_latent_dim(int(d)) for d in b.latent_dims))
    if b.n_simulated < 10:
        raise ValueError("need at least 10 simulated spectra")
    if not 0 < b.test_fraction < 1:
        raise ValueError("test_fraction must be in (0, 1)")
    for name in ("pretrain_epochs", "finetune_epochs", "extended_epochs", "regressor_epochs", "physics_steps",
                 "physics_finetune_steps"):
        if int(getattr(b, name)) < 0:
            raise ValueError(f"{name} must be ≥ 0, got {getattr(b, name)}")
    if b.pretrain_epochs < 1 or b.regressor_epochs < 1:
        raise ValueError("the pretraining and regressor stages need at least 1 epoch each "
                         "(--epochs, --regressor-epochs)")
    if int(b.n_samples) < 1:
        raise ValueError(f"the number of latent draws (--samples) must be at least 1, got {b.n_samples}")
    bad = [m for m in b.fit_methods if m not in FIT_METHODS]
    if bad or not b.fit_methods:
        raise ValueError(f"fit methods must be among {', '.join(FIT_METHODS)}, got {list(b.fit_methods)}")
    return b


def default_measured_files(repo: str | os.PathLike | None = None) -> list[Path]:
    """The five shared ARCS spectra (``<repo>/../shared/data/al_arcs_ei50/al_<T>K.h5``) that exist."""
    roots = []
    if repo is not None:
        roots.append(Path(repo).resolve().parent / SHARED_DATA_NAME)
    roots.append(Path(__file__).resolve().parents[3] / SHARED_DATA_NAME)
    roots.append(Path.cwd().resolve().parent / SHARED_DATA_NAME)
    for root in roots:
        files = [root / f"al_{t}K.h5" for t in SHARED_TEMPERATURES]
        found = [f for f in files if f.exists()]
        if found:
            return found
    return []

