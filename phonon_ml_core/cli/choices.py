"""Choices and defaults of command-line flags whose values the core defines, gathered so that ``--help`` and
argument errors answer without importing torch: imported from their torch-free homes, except the two whose homes
import torch (copied; tests/test_cli_startup.py checks that they equal the core's)."""
from __future__ import annotations

# torch-free homes (plain data), imported rather than copied
from phonon_ml_core.fitting.defaults import LINEWIDTH_MODELS, PRIOR_SCOPES, SERIES_MODELS
from phonon_ml_core.fitting.defaults import METHODS as FIT_METHODS
from phonon_ml_core.learn.configs import training_defaults
from phonon_ml_core.learn.defaults import FAMILIES
from phonon_ml_core.physics.symmetry import DISPERSION_PATHS
from phonon_ml_core.report.budget import STRATEGIES as EVALUATION_STRATEGIES
from phonon_ml_core.specs.standard import (STANDARD_CHOPPER_FREQUENCY, STANDARD_CHOPPER_PACKAGE, STANDARD_EI_MEV,
                                           STANDARD_INSTRUMENT)

__all__ = ["DISPERSION_PATHS", "EVALUATION_STRATEGIES", "FAMILIES", "FIT_METHODS", "LATENT_DELTA", "LATENT_THRESHOLD",
           "LINEWIDTH_MODELS", "MESH_DENSITY", "PRIOR_CHOICES", "SERIES_MODELS", "STANDARD_CHOPPER_FREQUENCY",
           "STANDARD_CHOPPER_PACKAGE", "STANDARD_EI_MEV", "STANDARD_INSTRUMENT", "TRAINING_DEFAULTS"]
#: ``fit --prior``: "none" and the prior scopes.
PRIOR_CHOICES = ("none", *PRIOR_SCOPES)

#: ``train`` defaults by argparse name (learn.configs.PipelineConfig's).
TRAINING_DEFAULTS = training_defaults()

# The homes below import torch: their values are copied here and
# tests/test_cli_startup.py::test_cli_choices_are_the_cores checks each against the core's.
#: ``simulate --mesh-density``: ``SimulationSettings.mesh_density`` (phonon_ml_core.simulator.settings, torch).
MESH_DENSITY = 16
#: ``latent-analysis --threshold/--delta``: :data:`phonon_ml_core.report.latent.DEFAULT_THRESHOLD`/``DEFAULT_DELTA``.
LATENT_THRESHOLD = 0.01
LATENT_DELTA = 0.5
