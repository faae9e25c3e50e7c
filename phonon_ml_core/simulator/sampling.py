"""Drawing force constants and nuisance parameters for simulated training sets (conventions §1, §7)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phonon_ml_core.physics.bvk import BvKModel, stability_check
from phonon_ml_core.specs import ALUMINIUM, Material
from phonon_ml_core.specs.rules import SMALL_FRACTION, sampling_rule


@dataclass
class SamplingConfig:
    """How force constants and nuisance parameters are drawn (force constants in N/m).

    By default every range comes from the material (``Material.sampling_ranges``, the §7 rule for built-ins:
    aluminium 0.5–1.5 × reference with 2YY in [−1, 1]). Set ``relative_range`` to draw each constant in
    [lo, hi] × reference instead (``reference``: default the material's); constants the §7 rule calls small
    (|ref| < 10 % of the largest) then keep the rule's absolute range. ``absolute_ranges`` (name → (lo, hi))
    override single constants in either case.

    Attributes:
        reference: reference constants, N/m, in the order of the material's names (None: the material's).
        relative_range: (lo, hi) multiples of the reference (None: the material's sampling ranges).
        absolute_ranges: constants sampled in an absolute range, N/m, by name.
        temperature: K, used when ``temperature_range`` is None.
        temperature_range: (lo, hi) K, uniform, a nuisance variation (lattice parameter follows a(T)).
        linewidth_range: (lo, hi) of γ (HWHM = γ·E), uniform; None = no intrinsic linewidth.
        seed: random seed (the whole set is reproducible from it, whatever the sharding).
    """

    reference: list[float] | None = None
    relative_range: tuple[float, float] | None = None
    absolute_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    temperature: float = 300.0
    temperature_range: tuple[float, float] | None = None
    linewidth_range: tuple[float, float] | None = None
    seed: int = 0

    def bounds(self, material: Material | tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper sampling bounds per constant (N/m) for ``material`` (default aluminium).

        A tuple of names (legacy) stands for the aluminium-style rule applied to :attr:`reference`.
        """
        if isinstance(material, tuple):
            names, material = material, None
            if self.reference is None:
                raise ValueError("give the reference constants (or pass the Material instead of its names)")
        else:
            material = ALUMINIUM if material is None else material
            names = material.names
        ref = np.asarray(material.reference_constants if self.reference is None else self.reference, dtype=float)
        if ref.size != len(names):
            owner = "" if material is None else f" of {material.name}"
            raise ValueError(f"{ref.size} reference constants for the {len(names)} constants{owner} {list(names)}: "
                             "give one value (N/m) per name, or leave reference unset to use the material's")
        if material is not None and self.reference is None and self.relative_range is None:
            lo, hi = (np.array(x, dtype=float) for x in zip(*material.sampling_ranges))
        else:
            rel = (0.5, 1.5) if self.relative_range is None else self.relative_range
            lo, hi = np.sort(np.stack([ref * rel[0], ref * rel[1]]), axis=0)
            rule = sampling_rule(ref)
            small = (np.abs(ref) < SMALL_FRACTION * np.abs(ref).max()) | (ref == 0)
            for i in np.where(small)[0]:
                lo[i], hi[i] = rule[i]
        for name, (a, b) in self.absolute_ranges.items():
            if name not in names:
                raise ValueError(f"absolute range for unknown constant {name!r}; known: {list(names)}")
            lo[names.index(name)], hi[names.index(name)] = min(a, b), max(a, b)
        return lo, hi

    def describe_bounds(self, material: Material) -> dict:
        """{"names", "low", "high"} (N/m): the resolved ranges, stored with every data set."""
        lo, hi = self.bounds(material)
        return {"names": list(material.names), "low": lo.tolist(), "high": hi.tolist()}


@dataclass
class SampledParameters:
    """Per-spectrum inputs of a data set."""

    force_constants: np.ndarray  # (N, K) N/m
    temperature: np.ndarray      # (N,) K
    linewidth: np.ndarray        # (N,) γ
    n_rejected: int              # unstable draws rejected


def sample_parameters(n: int, config: SamplingConfig | None = None, model: BvKModel | None = None,
                      material: Material | None = None) -> SampledParameters:
    """Draw ``n`` stable force-constant sets of ``material`` (default aluminium; rejecting unstable ones, checked
    on ``model`` or the material's BvK model) and the nuisance parameters."""
    if n < 1:
        raise ValueError("the number of spectra must be at least 1")
    config = SamplingConfig() if config is None else config
    material = ALUMINIUM if material is None else material
    model = material.bvk_model() if model is None else model
    if model.names != material.names:
        raise ValueError(f"the stability model's constants {list(model.names)} differ from {material.name}'s "
                         f"{list(material.names)}: pass a model of the same lattice and shells")
    lo, hi = config.bounds(material)
    rng = np.random.default_rng(config.seed)
    accepted: list[np.ndarray] = []
    n_have, rejected = 0, 0
    while n_have < n:
        draw = rng.uniform(lo, hi, size=(max(2 * (n - n_have), 64), len(lo)))
        ok = stability_check(draw, model, n_grid=12)
        rejected += int((~ok).sum())
        accepted.append(draw[ok])
        n_have += int(ok.sum())
        if n_have == 0 and rejected > 10_000:
            raise ValueError(f"no stable {material.name} force constants in the sampling ranges "
                             f"({', '.join(f'{k} {a:g}..{b:g}' for k, a, b in zip(material.names, lo, hi))} N/m): "
                             "narrow them around a stable reference")
    fc = np.concatenate(accepted)[:n]
    if config.temperature_range is None:
        temps = np.full(n, float(config.temperature))
    else:
        temps = rng.uniform(*config.temperature_range, size=n)
    gam = np.zeros(n) if config.linewidth_range is None else rng.uniform(*config.linewidth_range, size=n)
    if np.any(temps <= 0):
        raise ValueError("temperatures must be positive (K)")
    return SampledParameters(fc, temps, gam, rejected)
