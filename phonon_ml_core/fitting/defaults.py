"""The one home of the fit defaults shared by the Python API, ``phonon-ml fit`` and the Mantid fit algorithm.

``fit_spectrum(spectrum)`` with no options fits what ``phonon-ml fit --input FILE`` fits: the material's constants
by bounded Nelder–Mead, with the intrinsic linewidth γ (HWHM = γ·E) and a residual background slope in energy as
nuisance parameters (docs/fitting.md). The Mantid algorithm FitForceConstantsNelderMead declares the same defaults
(guarded by ``tests/test_hostile_api.py``). No torch here: this module is plain data.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIT_DEFAULTS", "LINEWIDTH_MODELS", "METHODS", "PRIOR_SCOPES", "SERIES_MODELS", "FitDefaults"]

#: Fit methods, the default first.
METHODS = ("nelder-mead", "gradient")
#: Models of the constants against temperature in a joint fit (:mod:`.joint_model`), the default first.
SERIES_MODELS = ("linear", "quadratic", "free")
#: Intrinsic linewidth models (:mod:`.linewidth`): HWHM = γ·E, or γ0 + γ1·E; the default first.
LINEWIDTH_MODELS = ("proportional", "affine")
#: Which constants get a reference prior (:mod:`.priors`): those of added shells, or all.
PRIOR_SCOPES = ("added", "all")


@dataclass(frozen=True)
class FitDefaults:
    """Defaults of one fit (:func:`~phonon_ml_core.fitting.spectrum_fit.fit_spectrum`, ``phonon-ml fit``, Mantid).

    Attributes:
        method: "nelder-mead" or "gradient".
        fit_linewidth: fit the intrinsic linewidth γ (HWHM = γ·E, dimensionless) as a nuisance parameter.
        fit_background: profile out a residual background slope b1 (per meV) in energy transfer.
        linewidth_start: start of γ when it is fitted and no ``linewidth`` is given.
        linewidth_bounds: (low, high) of γ when it is fitted.
        seed: seed of the gradient fit's extra starts.
        n_starts, adam_steps, n_polish: gradient fit: starts optimised together, batched Adam steps, starts polished
            by L-BFGS-B.
        uncertainty: compute one-sigma uncertainties from the Gauss–Newton curvature.
        threads: torch intra-op threads during a fit (1: the per-call work is small and cores are often shared).
    """

    method: str = METHODS[0]
    fit_linewidth: bool = True
    fit_background: bool = True
    linewidth_start: float = 0.03
    linewidth_bounds: tuple[float, float] = (1.0e-3, 0.3)
    seed: int = 0
    n_starts: int = 6
    adam_steps: int = 8
    n_polish: int = 2
    uncertainty: bool = True
    threads: int = 1


#: The defaults every front end uses.
FIT_DEFAULTS = FitDefaults()
