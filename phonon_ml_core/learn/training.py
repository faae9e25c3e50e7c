"""The public names of training, importable from one place (they live in the modules named beside them).

:mod:`.configs` (settings), :mod:`.inputs` (spectra as tensors), :mod:`.loop` (the generic loop and checkpoints),
:mod:`.losses` (stage losses), :mod:`.metrics` (R²), :mod:`.history` (log and loss curve), :mod:`.targets`
(named outputs) and :mod:`.pipeline` (all stages in order).
"""
from __future__ import annotations

from phonon_ml_core.learn.configs import (ADAM_LR, AUTOENCODER_STAGES, DEFAULT_BACKGROUND_DEGREE, SGD_LR, STAGES,
                                          PipelineConfig, StageConfig, study_stage_config)
from phonon_ml_core.learn.history import plot_history, write_log
from phonon_ml_core.learn.inputs import spectra_tensor, split_indices
from phonon_ml_core.learn.loop import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, FitResult, fit, load_checkpoint, \
    save_checkpoint
from phonon_ml_core.learn.losses import (augmented_autoencoder_loss, autoencoder_loss, encode_all, regressor_loss,
                                         simulator_source)
from phonon_ml_core.learn.metrics import evaluate, r2_score
from phonon_ml_core.learn.pipeline import TrainingResult, physics_simulator, train_pipeline
from phonon_ml_core.learn.targets import LINEWIDTH, Targets

__all__ = ["ADAM_LR", "AUTOENCODER_STAGES", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "DEFAULT_BACKGROUND_DEGREE",
           "LINEWIDTH", "SGD_LR", "STAGES", "FitResult", "PipelineConfig", "StageConfig", "Targets", "TrainingResult",
           "augmented_autoencoder_loss", "autoencoder_loss", "encode_all", "evaluate", "fit", "load_checkpoint",
           "physics_simulator", "plot_history", "r2_score", "regressor_loss", "save_checkpoint", "simulator_source",
           "spectra_tensor", "split_indices", "study_stage_config", "train_pipeline", "write_log"]
