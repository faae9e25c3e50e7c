"""Gaussian priors on force constants, centred on the material's reference (ill-determined constants stay physical).

Extra shells (:meth:`~phonon_ml_core.specs.Material.with_shells`) add constants that a powder spectrum barely
determines; without a prior they drift to their bounds and trade against the first shells. A prior adds
Σ_k w·((θ_k − μ_k)/σ_k)² to the NMSE objective (conventions §3), as extra residual rows so the Gauss–Newton
uncertainty sees it too.

Rules (docs/fitting.md, "Nuisance model"):

* centre μ_k: the material's reference constant (literature value for added shells, else 0);
* width σ_k: half the width of the material's sampling range for that constant (§7: 0.5·|reference| for the large
  constants, 10 % of the largest constant for the small ones), times ``width_scale``;
* weight w (NMSE per σ²): :data:`FLOOR_NMSE` / :data:`PRIOR_INDEPENDENT_PIXELS`, so one σ² of prior costs as much
  as Δχ² = 1 of a spectrum worth 45 independent pixels at the fit floor NMSE 0.17.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from phonon_ml_core.fitting.defaults import PRIOR_SCOPES
from phonon_ml_core.specs import Material

#: The NMSE floor of the real-data fits (benchmarks/fit.py) that sets the prior weight.
FLOOR_NMSE = 0.17
#: Independent pixels one spectrum was taken to be worth when the prior weight was set (the earlier calibration's
#: measured cap, benchmarks/coverage.py; the four-shell figures of docs/fitting.md were measured with it).
PRIOR_INDEPENDENT_PIXELS = 45.0
#: Default prior weight, NMSE per σ².
PRIOR_WEIGHT = FLOOR_NMSE / PRIOR_INDEPENDENT_PIXELS


@dataclass(frozen=True)
class GaussianPrior:
    """Independent Gaussian priors on some force constants: mean and σ (N/m) per name; σ = inf means no prior."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    sigma: tuple[float, ...]
    weight: float = PRIOR_WEIGHT

    def __post_init__(self):
        if not (len(self.names) == len(self.mean) == len(self.sigma)):
            raise ValueError("a prior needs one mean and one σ per constant name")
        if any(not s > 0 for s in self.sigma) or not self.weight > 0:
            raise ValueError("prior widths σ and the weight must be > 0 (σ = inf for no prior)")

    def check_names(self, names) -> GaussianPrior:
        """This prior, after checking it was built for constants ``names`` (clear error otherwise)."""
        if tuple(names) != tuple(self.names):
            raise ValueError(f"the prior is on {', '.join(self.names)} but the fit has {', '.join(names)}: build it "
                             "for the fitted material (reference_prior(material, ...), same shells)")
        return self

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the constants that carry a prior."""
        return tuple(n for n, s in zip(self.names, self.sigma) if np.isfinite(s))

    def residual_rows(self, constants: torch.Tensor, sum_x2: float) -> torch.Tensor:
        """Rows r (B, K_active) with Σ r² / sum_x2 = the penalty in NMSE units; ``constants`` (B, K) N/m."""
        keep = [i for i, s in enumerate(self.sigma) if np.isfinite(s)]
        mu = torch.as_tensor([self.mean[i] for i in keep], dtype=constants.dtype)
        sd = torch.as_tensor([self.sigma[i] for i in keep], dtype=constants.dtype)
        return (constants[:, keep] - mu) / sd * float(np.sqrt(self.weight * sum_x2))

    def penalty(self, constants) -> np.ndarray:
        """The penalty (B,) in NMSE units for constants (B, K) or (K,), N/m."""
        c = torch.as_tensor(np.atleast_2d(np.asarray(constants, float)), dtype=torch.float64)
        return (self.residual_rows(c, 1.0) ** 2).sum(1).numpy()

    def to_dict(self) -> dict:
        return {"names": list(self.names), "mean": list(self.mean), "sigma": [None if not np.isfinite(s) else s
                                                                            for s in self.sigma],
                "weight": self.weight, "active": list(self.active)}


def shell_of(name: str) -> int:
    """The shell number of a constant's name ("2XX" → 2)."""
    m = re.match(r"(\d+)", name)
    if m is None:
        raise ValueError(f"constant name {name!r} does not start with its shell number")
    return int(m.group(1))


def reference_prior(material: Material, scope: str | Sequence[str] = "added", base_shells: int = 2,
                    width_scale: float = 1.0, weight: float = PRIOR_WEIGHT) -> GaussianPrior:
    """Priors centred on ``material``'s reference constants (rules in the module docstring).

    ``scope``: "added" (constants of shells beyond ``base_shells``), "all", or a list of names.
    """
    if isinstance(scope, str):
        if scope not in PRIOR_SCOPES:
            raise ValueError(f"prior scope {scope!r}: choose one of {', '.join(PRIOR_SCOPES)} or give names")
        chosen = set(material.names) if scope == "all" else {n for n in material.names if shell_of(n) > base_shells}
    else:
        chosen = set(scope)
        unknown = chosen - set(material.names)
        if unknown:
            raise ValueError(f"no constants {sorted(unknown)} in {material.name}: choose from "
                             f"{', '.join(material.names)}")
    if not width_scale > 0:
        raise ValueError(f"width_scale must be > 0, got {width_scale}")
    sigma = tuple(0.5 * (hi - lo) * width_scale if n in chosen else float("inf")
                  for n, (lo, hi) in zip(material.names, material.sampling_ranges))
    return GaussianPrior(material.names, tuple(float(v) for v in material.reference_constants), sigma, float(weight))
