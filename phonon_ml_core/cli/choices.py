"""Choices of command-line flags whose values the core defines, as plain literals so that ``--help`` and argument
errors answer without importing torch (tests/test_cli_startup.py checks that they equal the core's)."""
from __future__ import annotations

# torch-free homes (plain data), imported rather than copied
from phonon_ml_core.fitting.defaults import LINEWIDTH_MODELS, PRIOR_SCOPES, SERIES_MODELS
from phonon_ml_core.fitting.defaults import METHODS as FIT_METHODS
from phonon_ml_core.physics.symmetry import DISPERSION_PATHS
from phonon_ml_core.specs.standard import (STANDARD_CHOPPER_FREQUENCY, STANDARD_CHOPPER_PACKAGE, STANDARD_EI_MEV,
                                           STANDARD_INSTRUMENT)

__all__ = ["DISPERSION_PATHS", "EVALUATION_STRATEGIES", "FAMILIES", "FIT_METHODS", "LATENT_DELTA", "LATENT_THRESHOLD",
           "LINEWIDTH_MODELS", "MESH_DENSITY", "PRIOR_CHOICES", "SERIES_MODELS", "STANDARD_CHOPPER_FREQUENCY",
           "STANDARD_CHOPPER_PACKAGE", "STANDARD_EI_MEV", "STANDARD_INSTRUMENT", "TRAINING_DEFAULTS"]
#: ``fit --prior``: "none" and the prior scopes.
PRIOR_CHOICES = ("none", *PRIOR_SCOPES)

# The homes below import torch or sit in learn/ and report/: their values are copied here and
# tests/test_cli_startup.py::test_cli_choices_are_the_cores checks each against the core's.
#: ``simulate --mesh-density``: ``SimulationSettings.mesh_density`` (phonon_ml_core.simulator.settings, torch).
MESH_DENSITY = 16
#: ``train --family``: :data:`phonon_ml_core.learn.networks.FAMILIES`.
FAMILIES = ("fcvae", "fcae", "cnnae", "cnnvae")
#: ``train`` defaults by argparse name: :func:`phonon_ml_core.learn.setup.training_defaults`.
TRAINING_DEFAULTS = {
    "family": "fcvae", "latent_dim": 30, "kl_weight": 1e-06, "epochs": 60, "finetune_epochs": 50,
    "extended_epochs": 50, "regressor_epochs": 200, "optimizer": "adam", "lr": None, "batch_size": 64,
    "regressor_batch_size": 128, "patience": 10, "regressor_patience": 30, "regressor_codes": "sample",
    "augment_noise": 0.0, "augment_background": 0.0, "on_the_fly": 0, "background_degree": 3,
    "predict_linewidth": True, "physics_steps": 0, "physics_finetune_steps": 100, "physics_batch": 32,
    "physics_lr": 3e-05, "physics_finetune_lr": 0.0003, "physics_finetune_layers": "last", "physics_background": True,
    "regressor_temperature": False, "seed": 0, "checkpoint_every": 5}
#: ``evaluate --strategies``: :data:`phonon_ml_core.report.budget.STRATEGIES`.
EVALUATION_STRATEGIES = ("sim-only", "fine-tuned", "extended")
#: ``latent-analysis --threshold/--delta``: :data:`phonon_ml_core.report.latent.DEFAULT_THRESHOLD`/``DEFAULT_DELTA``.
LATENT_THRESHOLD = 0.01
LATENT_DELTA = 0.5
