"""Choices of command-line flags whose values the core defines, as plain literals so that ``--help`` and argument
errors answer without importing torch (tests/test_cli_startup.py checks that they equal the core's)."""
from __future__ import annotations

from phonon_ml_core.fitting.defaults import METHODS as FIT_METHODS   # torch-free, the one home (``fit --method``)

__all__ = ["FIT_METHODS", "LINEWIDTH_MODELS", "PRIOR_CHOICES", "SERIES_MODELS"]
#: ``fit --series-model``: :data:`phonon_ml_core.fitting.joint_model.SERIES_MODELS`.
SERIES_MODELS = ("linear", "quadratic", "free")
#: ``fit --linewidth-model``: :data:`phonon_ml_core.fitting.linewidth.LINEWIDTH_MODELS`.
LINEWIDTH_MODELS = ("proportional", "affine")
#: ``fit --prior``: "none" and :data:`phonon_ml_core.fitting.priors.PRIOR_SCOPES`.
PRIOR_CHOICES = ("none", "added", "all")
