"""Settings of a training run: one stage (:class:`StageConfig`) and the whole pipeline (:class:`PipelineConfig`).

The defaults here are the recommended ones and the one home of the training defaults: ``phonon-ml train``
and the Mantid algorithm TrainPhononVAE take theirs from this module (docs/training.md, "Speed").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from phonon_ml_core.learn.defaults import DEFAULT_FAMILY, DEFAULT_KL_WEIGHT, DEFAULT_LATENT_DIM, TRAINABLE_LAYERS

STAGES = ("pretrain", "finetune", "extended", "regressor", "physics", "physics-finetune")
#: The stages that train the autoencoder (the others train the regressor).
AUTOENCODER_STAGES = ("pretrain", "finetune", "extended")
DEFAULT_BACKGROUND_DEGREE = 3
#: The study's SGD learning rates (momentum 0.9).
SGD_LR = {"fcae": 10.0, "fcvae": 1.0, "cnnae": 1.0, "cnnvae": 1.0, "regressor": 0.05}
ADAM_LR = {"fcae": 1e-3, "fcvae": 1e-3, "cnnae": 1e-3, "cnnvae": 1e-3, "regressor": 1e-3}
#: Default epoch caps and early-stopping patience (on the validation loss) of ``phonon-ml train``: chosen so that
#: 8,000 spectra train within 15 minutes on 2 CPU cores at the accuracy of the shipped bundle's recipe
#: (docs/training.md, "Speed"; benchmarks/train.py measures it).
DEFAULT_PRETRAIN_EPOCHS = 60
DEFAULT_PATIENCE = 10
DEFAULT_REGRESSOR_EPOCHS = 200

@dataclass
class StageConfig:
    """Optimisation settings of one stage.

    Attributes:
        epochs: maximum number of passes over the training data.
        batch_size: spectra (or codes) per step.
        optimizer: "adam" (default, with cosine decay and early stopping) or "sgd" (the study's, momentum 0.9).
        lr: learning rate; None = the default for the optimiser and model (:data:`SGD_LR`, :data:`ADAM_LR`).
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        schedule: "cosine" (to 0 over ``epochs``) or "constant".
        patience: stop after this many epochs without validation improvement; None = never.
        val_fraction: fraction of the data held out for validation (none when fewer than 10 items).
        checkpoint_every: write the checkpoint every this many epochs (and at the end).
    """

    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    patience: int | None = 20
    val_fraction: float = 0.1
    checkpoint_every: int = 5

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if int(self.epochs) < 0 or int(self.batch_size) < 1 or int(self.checkpoint_every) < 1:
            raise ValueError("epochs must be ≥ 0, batch_size and checkpoint_every ≥ 1")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")

    def learning_rate(self, kind: str) -> float:
        """The configured learning rate, or the default for ``kind`` (a family or 'regressor')."""
        if self.lr is not None:
            return float(self.lr)
        return (SGD_LR if self.optimizer == "sgd" else ADAM_LR)[kind]


def study_stage_config(**kw: Any) -> StageConfig:
    """The study's optimiser: SGD, momentum 0.9, constant learning rate, no early stopping."""
    return StageConfig(**{"optimizer": "sgd", "schedule": "constant", "patience": None, **kw})


@dataclass
class PipelineConfig:
    """Everything that defines a training run (stored in the bundle).

    Attributes:
        family, latent_dim, kl_weight: the autoencoder (models.py).
        pretrain: settings of the pretraining stage (simulated spectra).
        finetune_epochs, extended_epochs: epochs of the fine-tuning (measured) and extended (simulated)
            stages; they reuse ``pretrain`` settings with the learning rate × ``finetune_lr_factor``.
        regressor: settings of the regressor stage.
        regressor_codes: "sample" (z ~ q(z|x), fresh each epoch; default: more robust on measured data) or "mean"
            (z = mu; better simulated R²), docs/training.md.
        augment_noise: on simulated stages, Gaussian pixel noise added to each input spectrum, in units of its
            span (measured data: ≈ 0.03–0.06); the reconstruction target stays the clean spectrum.
        augment_background: on simulated stages, a random residual background b1·(E − Ē), flat in |Q|, with
            |b1·(E_max − E_min)| uniform up to this many spans; inputs are then re-normalised.
        on_the_fly: when > 0, pretraining draws this many fresh spectra from the simulator every epoch
            (sampling ranges of the data set's metadata, seeded by epoch) instead of reusing the file's
            training split; validation still uses the file's held-out split.
        background_degree: the autoencoder sees spectra with their least-squares polynomial background of
            this total degree in (E, |Q|) removed (``SpectrumAutoencoder.model_space``); None = raw spectra.
        predict_linewidth: the regressor also predicts the intrinsic linewidth γ when the simulated set has
            γ labels that vary (its 6th output; a set simulated without a γ range has all-zero labels).
        physics_steps: optimiser steps of the ``physics`` stage (regressor through the simulator on simulated
            spectra, :mod:`phonon_ml_core.learn.consistency`); 0 = skip.
        physics_finetune_steps: steps of the ``physics-finetune`` stage on the measured spectra (when given
            and ``finetune_epochs`` > 0); 0 = skip.
        physics_batch: spectra per step of both physics stages.
        physics_lr: Adam learning rate of the ``physics`` stage (all regressor layers).
        physics_finetune_lr, physics_finetune_layers: learning rate of the ``physics-finetune`` stage and which
            regressor layers it trains: "last" (the output layer only, default: generalises to spectra left
            out of the fine-tuning), "all", or "bias" (the output layer's bias: a constant offset that keeps the
            trend in T).
        physics_background: both physics stages compare with a profiled residual background slope, as the
            fits do by default (:mod:`phonon_ml_core.fitting.residual_background`): the regressor is not pushed to
            mimic a smooth background with the force constants.
        regressor_temperature: the regressor also takes the sample temperature (K) as an input
            (:class:`~phonon_ml_core.learn.networks.ForceConstantRegressor` ``conditions``); predictions then need it.
        temperature_invariance: weight of the temperature-invariance penalty in the ``physics`` stage
            (:class:`~phonon_ml_core.learn.consistency.TemperatureInvariance`: each training spectrum's constants and
            γ simulated again at a second temperature, the squared difference of the standardised predictions
            penalised; issue 16 item 5); 0 = off (the default; the measurement is in models/README.md).
        latent_temperature_invariance: weight of the feature extractor's latent temperature-invariance penalty in
            the ``pretrain`` stage (each training spectrum's constants and γ simulated again at a second
            temperature, :func:`~phonon_ml_core.learn.consistency.second_temperature_spectra`; the squared
            difference of the two latent means relative to the latent spread is penalised,
            :func:`~phonon_ml_core.learn.losses.latent_invariance_loss`; issue 16 item 5); 0 = off (the default).
        seed: seeds the weights, the split, the shuffling and the sampling.
    """

    family: str = DEFAULT_FAMILY
    latent_dim: int = DEFAULT_LATENT_DIM
    kl_weight: float = DEFAULT_KL_WEIGHT
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(epochs=DEFAULT_PRETRAIN_EPOCHS,
                                                                      patience=DEFAULT_PATIENCE))
    finetune_epochs: int = 50
    extended_epochs: int = 50
    finetune_lr_factor: float = 0.1
    regressor: StageConfig = field(default_factory=lambda: StageConfig(epochs=DEFAULT_REGRESSOR_EPOCHS,
                                                                       batch_size=128, patience=30))
    regressor_codes: str = "sample"
    augment_noise: float = 0.0
    augment_background: float = 0.0
    on_the_fly: int = 0
    background_degree: int | None = DEFAULT_BACKGROUND_DEGREE
    predict_linewidth: bool = True
    physics_steps: int = 0
    physics_finetune_steps: int = 100
    physics_batch: int = 32
    physics_lr: float = 3e-5
    physics_finetune_lr: float = 3e-4
    physics_finetune_layers: str = "last"
    physics_background: bool = True
    regressor_temperature: bool = False
    temperature_invariance: float = 0.0
    latent_temperature_invariance: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.regressor_codes not in ("sample", "mean"):
            raise ValueError(f"regressor_codes must be 'sample' or 'mean', got {self.regressor_codes!r}")
        if int(self.on_the_fly) < 0:
            raise ValueError("on_the_fly must be ≥ 0 (spectra simulated per epoch)")
        if not (self.augment_noise >= 0 and self.augment_background >= 0):
            raise ValueError("augment_noise and augment_background must be ≥ 0")
        if self.background_degree is not None and not 0 <= int(self.background_degree) <= 6:
            raise ValueError(f"background_degree must be 0–6 or None, got {self.background_degree}")
        if int(self.physics_steps) < 0 or int(self.physics_finetune_steps) < 0 or int(self.physics_batch) < 1:
            raise ValueError("physics_steps and physics_finetune_steps must be ≥ 0 and physics_batch ≥ 1")
        if not (self.physics_lr > 0 and self.physics_finetune_lr > 0):
            raise ValueError("physics_lr and physics_finetune_lr must be positive")
        if self.physics_finetune_layers not in TRAINABLE_LAYERS:
            raise ValueError(f"physics_finetune_layers must be one of {', '.join(TRAINABLE_LAYERS)}, got "
                             f"{self.physics_finetune_layers!r}")
        if not self.temperature_invariance >= 0:
            raise ValueError(f"temperature_invariance must be ≥ 0 (0 = off), got {self.temperature_invariance}")
        if not self.latent_temperature_invariance >= 0:
            raise ValueError("latent_temperature_invariance must be ≥ 0 (0 = off), got "
                             f"{self.latent_temperature_invariance}")
        if not 0 < self.finetune_lr_factor <= 1:
            raise ValueError(f"finetune_lr_factor must be in (0, 1], got {self.finetune_lr_factor}")

    def finetune_stage(self, epochs: int) -> StageConfig:
        """Pretraining settings with the reduced learning rate and ``epochs``."""
        lr = self.pretrain.learning_rate(self.family) * self.finetune_lr_factor
        return replace(self.pretrain, lr=lr, epochs=epochs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        d = dict(d)
        d.setdefault("background_degree", None)  # configs written before the option existed: raw spectra
        d.setdefault("predict_linewidth", False)
        d["pretrain"] = StageConfig(**d.get("pretrain", {}))
        d["regressor"] = StageConfig(**d.get("regressor", {}))
        return cls(**d)


def training_defaults() -> dict[str, Any]:
    """Default option values of ``phonon-ml train`` / TrainPhononVAE by argparse name (from :class:`PipelineConfig`)."""
    c = PipelineConfig()
    return {"family": c.family, "latent_dim": c.latent_dim, "kl_weight": c.kl_weight, "epochs": c.pretrain.epochs,
            "finetune_epochs": c.finetune_epochs, "extended_epochs": c.extended_epochs,
            "regressor_epochs": c.regressor.epochs, "optimizer": c.pretrain.optimizer, "lr": c.pretrain.lr,
            "batch_size": c.pretrain.batch_size, "regressor_batch_size": c.regressor.batch_size,
            "patience": c.pretrain.patience, "regressor_patience": c.regressor.patience,
            "regressor_codes": c.regressor_codes, "augment_noise": c.augment_noise,
            "augment_background": c.augment_background, "on_the_fly": c.on_the_fly,
            "background_degree": c.background_degree, "predict_linewidth": c.predict_linewidth,
            "physics_steps": c.physics_steps, "physics_finetune_steps": c.physics_finetune_steps,
            "physics_batch": c.physics_batch, "physics_lr": c.physics_lr, "physics_finetune_lr": c.physics_finetune_lr,
            "physics_finetune_layers": c.physics_finetune_layers, "physics_background": c.physics_background,
            "regressor_temperature": c.regressor_temperature, "temperature_invariance": c.temperature_invariance,
            "latent_temperature_invariance": c.latent_temperature_invariance,
            "seed": c.seed,
            "checkpoint_every": c.pretrain.checkpoint_every}
