"""Choices and defaults of command-line flags whose values the core defines, gathered so that ``--help`` and
argument errors answer without importing torch: imported from their torch-free homes, never copied."""
from __future__ import annotations

# torch-free homes (plain data), imported rather than copied
from phonon_ml_core.fitting.defaults import LINEWIDTH_MODELS, PRIOR_SCOPES, SERIES_MODELS
from phonon_ml_core.fitting.defaults import METHODS as FIT_METHODS
from phonon_ml_core.learn.configs import training_defaults
from phonon_ml_core.learn.defaults import FAMILIES, LATENT_ACTIVE_THRESHOLD, LATENT_SENSITIVITY_DELTA, TRAINABLE_LAYERS
from phonon_ml_core.physics.symmetry import DISPERSION_PATHS
from phonon_ml_core.report.budget import STRATEGIES as EVALUATION_STRATEGIES
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs.standard import (STANDARD_CHOPPER_FREQUENCY, STANDARD_CHOPPER_PACKAGE, STANDARD_EI_MEV,
                                           STANDARD_INSTRUMENT)

__all__ = ["DISPERSION_PATHS", "EVALUATION_STRATEGIES", "FAMILIES", "FIT_METHODS", "LATENT_DELTA", "LATENT_THRESHOLD",
           "LINEWIDTH_MODELS", "MESH_DENSITY", "PRIOR_CHOICES", "SERIES_MODELS", "STANDARD_CHOPPER_FREQUENCY",
           "STANDARD_CHOPPER_PACKAGE", "STANDARD_EI_MEV", "STANDARD_INSTRUMENT", "TRAINABLE_LAYERS",
           "TRAINING_DEFAULTS"]
#: ``fit --prior``: "none" and the prior scopes.
PRIOR_CHOICES = ("none", *PRIOR_SCOPES)

#: ``train`` defaults by argparse name (learn.configs.PipelineConfig's).
TRAINING_DEFAULTS = training_defaults()

#: ``simulate --mesh-density``: ``SimulationSettings.mesh_density`` (torch-free module).
MESH_DENSITY = SimulationSettings.mesh_density
#: ``latent-analysis --threshold/--delta`` (report.latent's defaults).
LATENT_THRESHOLD = LATENT_ACTIVE_THRESHOLD
LATENT_DELTA = LATENT_SENSITIVITY_DELTA
