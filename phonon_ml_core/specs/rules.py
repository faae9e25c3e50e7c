"""The §7 rules for sampling ranges and fit bounds, and number validation shared by the specs (units N/m)."""
from __future__ import annotations

import math

import numpy as np

from phonon_ml_core.specs._io import SpecError, require

#: Training sets: each constant uniform in [0.5, 1.5] × reference (conventions §1, §7).
SAMPLING_RELATIVE = (0.5, 1.5)
#: Fits: each constant bounded to [0.3, 2] × |reference| with the reference's sign (fitting.default_bounds).
FIT_RELATIVE = (0.3, 2.0)
#: Constants with |ref| below this fraction of the largest |ref| get an absolute range instead.
SMALL_FRACTION = 0.1


def _floats(values, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{name} must be a list of numbers, got {values!r}") from exc
    require(all(math.isfinite(v) for v in out), f"{name} contains NaN or infinity: give finite numbers")
    return out


def _pairs(values, name: str, n: int | None = None, names: tuple[str, ...] = ()) -> tuple[tuple[float, float], ...]:
    try:
        out = tuple((float(lo), float(hi)) for lo, hi in values)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{name} must be a list of (low, high) pairs in N/m, got {values!r}") from exc
    if n is not None:
        require(len(out) == n, f"{name} has {len(out)} (low, high) pairs but the material has {n} constants "
                f"{list(names)}: give one pair per constant in that order")
    for k, (lo, hi) in enumerate(out):
        label = names[k] if k < len(names) else str(k)
        require(math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                f"{name}[{label}] = ({lo}, {hi}) is not a finite range with low < high: swap or fix the values")
    return out


def _one_significant_figure(x: float) -> float:
    return float(f"{x:.1g}")


def small_constant_width(reference) -> float:
    """Half-width (N/m) of the absolute range of small constants: 10 % of the largest |ref|, one significant figure.

    Aluminium: 10 % of 10.38 = 1.038 → 1.0, i.e. 2YY in [−1, 1] N/m as in conventions §1.
    """
    ref = np.abs(np.asarray(reference, dtype=float))
    return _one_significant_figure(SMALL_FRACTION * float(ref.max())) if ref.size and ref.max() > 0 else 1.0


def _ranges(reference, relative: tuple[float, float], small_scale: float) -> tuple[tuple[float, float], ...]:
    """relative × each constant (ordered low < high); constants below 10 % of the largest get ±small_scale·w."""
    ref = _floats(np.ravel(reference), "reference constants")
    largest = max((abs(r) for r in ref), default=0.0)
    w = small_scale * small_constant_width(ref)
    out = []
    for r in ref:
        if abs(r) < SMALL_FRACTION * largest or r == 0:
            out.append((-w, w))
        else:
            a, b = r * relative[0], r * relative[1]
            out.append((min(a, b), max(a, b)))
    return tuple(out)


def sampling_rule(reference) -> tuple[tuple[float, float], ...]:
    """Training-set sampling ranges (N/m) per constant, conventions §7.

    Each constant uniform in 0.5–1.5 × reference (ordered low < high for negative values); constants with
    |ref| < 10 % of the largest |ref| get the absolute range ±w, w = 10 % of the largest rounded to one
    significant figure. Aluminium [10.35, 10.38, −2.77, 2.30, −0.25] → 1XX (5.175, 15.525), …, 2YY (−1, 1).
    """
    return _ranges(reference, SAMPLING_RELATIVE, 1.0)


def fit_bounds_rule(reference) -> tuple[tuple[float, float], ...]:
    """Fit bounds (N/m) per constant: 0.3–2 × |ref| with the reference's sign; small constants (as in
    :func:`sampling_rule`) get ±2w. Aluminium: 2YY in [−2, 2] N/m (today's ``fitting.default_bounds``)."""
    return _ranges(reference, FIT_RELATIVE, 2.0)
