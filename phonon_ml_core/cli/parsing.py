"""The one parser of comma-separated number lists on the command line (force constants, ranges, starts)."""
from __future__ import annotations

import math
from collections.abc import Sequence


def parse_floats(text: str, n: int | None = None, what: str = "values", names: Sequence[str] | None = None
                 ) -> list[float]:
    """'a,b,c' → [a, b, c] as floats, with a clear error for a non-number, a non-finite value or a wrong count.

    Args:
        text: comma-separated numbers (spaces allowed).
        n: the number of values required (None: any number ≥ 1).
        what: what the values are, for the messages (e.g. "force constants").
        names: the names of the values in order (e.g. the material's constants), quoted when the count is wrong.
    """
    try:
        vals = [float(x) for x in str(text).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if n is not None and len(vals) != n:
        order = f" ({', '.join(names)})" if names else ""
        raise ValueError(f"expected {n} {what}{order}, got {len(vals)} in {text!r}")
    if not vals:
        raise ValueError(f"{what}: no numbers in {text!r}")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{what} must be finite numbers, got {text!r}")
    return vals


def parse_range(text: str, what: str) -> tuple[float, float]:
    """'lo,hi' → (lo, hi) with lo < hi."""
    lo, hi = parse_floats(text, 2, f"{what} bounds")
    if not lo < hi:
        raise ValueError(f"{what}: LO must be below HI, got {text!r}")
    return lo, hi
