"""A material as plain, validated, serialisable data (conventions §0, §1, §7).

Units: force constants N/m, lattice parameter Å, temperature K, mass u (atomic mass units),
scattering length fm, cross-sections barn.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field, fields, replace
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from phonon_ml_core.specs._io import Serialisable, SpecError, check_keys, require
from phonon_ml_core.specs.rules import _floats, _pairs, fit_bounds_rule, sampling_rule, small_constant_width

__all__ = ["ALUMINIUM", "LATTICES", "LatticeParameter", "Material", "builtin_materials", "fit_bounds_rule",
           "get_material", "sampling_rule", "small_constant_width"]

LATTICES = ("fcc", "bcc", "sc")


@dataclass(frozen=True)
class LatticeParameter(Serialisable):
    """Lattice parameter a(T) in Å.

    kind "table": piecewise linear in ``temperatures_k`` → ``values_a``, held at the first value below the first
    temperature, extrapolated linearly (slope of the last two points) above the last.
    kind "expansion": a(T) = a_ref·(1 + alpha_per_k·(T − t_ref_k)); alpha (1/K) optional (None = constant a).
    """

    kind: str
    temperatures_k: tuple[float, ...] = ()
    values_a: tuple[float, ...] = ()
    a_ref: float | None = None
    t_ref_k: float | None = None
    alpha_per_k: float | None = None
    source: str = ""

    def __post_init__(self) -> None:
        require(self.kind in ("table", "expansion"),
                f"lattice_parameter.kind = {self.kind!r}: use 'table' or 'expansion'")
        t = _floats(self.temperatures_k, "lattice_parameter.temperatures_k")
        v = _floats(self.values_a, "lattice_parameter.values_a")
        object.__setattr__(self, "temperatures_k", t)
        object.__setattr__(self, "values_a", v)
        for name in ("a_ref", "t_ref_k", "alpha_per_k"):
            val = getattr(self, name)
            if val is not None:
                require(isinstance(val, (int, float)) and math.isfinite(val),
                        f"lattice_parameter.{name} = {val!r} must be a finite number")
                object.__setattr__(self, name, float(val))
        if self.kind == "table":
            require(len(t) >= 1 and len(t) == len(v),
                    f"lattice_parameter table needs equally long temperatures_k and values_a (got {len(t)} and "
                    f"{len(v)}): give one a (Å) per temperature (K)")
            require(all(b > a for a, b in itertools.pairwise(t)),
                    "lattice_parameter.temperatures_k must increase strictly: sort the table")
            require(all(x > 0 for x in v), "lattice_parameter.values_a must be positive (Å)")
        else:
            require(self.a_ref is not None and self.a_ref > 0,
                    f"lattice_parameter.a_ref = {self.a_ref!r}: give the lattice parameter (Å, > 0) at t_ref_k")
            require(self.t_ref_k is not None and self.t_ref_k >= 0,
                    f"lattice_parameter.t_ref_k = {self.t_ref_k!r}: give the temperature (K, >= 0) of a_ref")

    def at(self, temperature) -> float | np.ndarray:
        """a (Å) at ``temperature`` (K, scalar or array)."""
        t = np.asarray(temperature, dtype=float)
        require(bool(np.all(np.isfinite(t)) and np.all(t >= 0)),
                f"temperature {temperature!r} K must be finite and >= 0")
        if self.kind == "table":
            tk, va = np.asarray(self.temperatures_k), np.asarray(self.values_a)
            a = np.interp(t, tk, va)
            if tk.size >= 2:
                slope = (va[-1] - va[-2]) / (tk[-1] - tk[-2])
                a = np.where(t > tk[-1], va[-1] + slope * (t - tk[-1]), a)
        else:
            alpha = 0.0 if self.alpha_per_k is None else self.alpha_per_k
            a = self.a_ref * (1.0 + alpha * (t - self.t_ref_k))
        return float(a) if np.ndim(a) == 0 else a

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        if self.kind == "table":
            d.update(temperatures_k=list(self.temperatures_k), values_a=list(self.values_a))
        else:
            d.update(a_ref=self.a_ref, t_ref_k=self.t_ref_k, alpha_per_k=self.alpha_per_k)
        d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, data: dict) -> LatticeParameter:
        known = {f.name for f in fields(cls)}
        check_keys(data, "lattice_parameter", known, {"kind"})
        return cls(**data)


@dataclass(frozen=True)
class Material(Serialisable):
    """A monatomic cubic crystal: lattice, neighbour shells, mass, scattering, a(T) and reference constants.

    Attributes (units): mass_u (u), b_coh_fm (fm), sigma_coh_barn / sigma_inc_barn (barn),
    reference_constants / sampling_ranges / fit_bounds (N/m, in the order of :attr:`names`),
    reference_temperature_k (K): temperature of the reference fit. extended_reference: literature values
    (N/m) of constants beyond ``n_shells`` (name → value), used by :meth:`with_shells`.
    """

    name: str
    element: str
    lattice: str
    n_shells: int
    mass_u: float
    b_coh_fm: float
    sigma_coh_barn: float
    sigma_inc_barn: float
    lattice_parameter: LatticeParameter
    reference_constants: tuple[float, ...]
    reference_source: str
    sampling_ranges: tuple[tuple[float, float], ...]
    fit_bounds: tuple[tuple[float, float], ...]
    reference_temperature_k: float = 293.0
    notes: str = ""
    extended_reference: tuple[tuple[str, float], ...] = field(default=())

    def __post_init__(self) -> None:
        require(isinstance(self.name, str) and self.name.strip() != "", "material name must be a non-empty string")
        require(isinstance(self.element, str) and self.element.isalpha(),
                f"element = {self.element!r}: give a chemical symbol such as 'Cu'")
        require(self.lattice in LATTICES, f"lattice = {self.lattice!r}: use one of {list(LATTICES)}")
        require(isinstance(self.n_shells, (int, np.integer)) and not isinstance(self.n_shells, bool)
                and self.n_shells >= 1, f"n_shells = {self.n_shells!r}: give a whole number >= 1 (default 2)")
        object.__setattr__(self, "n_shells", int(self.n_shells))
        for name, positive in (("mass_u", True), ("b_coh_fm", False), ("sigma_coh_barn", None),
                               ("sigma_inc_barn", None), ("reference_temperature_k", None)):
            val = getattr(self, name)
            require(isinstance(val, (int, float, np.floating)) and not isinstance(val, bool) and math.isfinite(val),
                    f"{name} = {val!r} must be a finite number")
            object.__setattr__(self, name, float(val))
            if positive:
                require(val > 0, f"{name} = {val} must be positive")
            elif positive is None:
                require(val >= 0, f"{name} = {val} must be >= 0")
        if isinstance(self.lattice_parameter, dict):
            object.__setattr__(self, "lattice_parameter", LatticeParameter.from_dict(self.lattice_parameter))
        require(isinstance(self.lattice_parameter, LatticeParameter),
                "lattice_parameter must be a LatticeParameter (or its dict)")
        names = self.names
        ref = _floats(self.reference_constants, "reference_constants")
        require(len(ref) == len(names), f"reference_constants has {len(ref)} values but a {self.n_shells}-shell "
                f"{self.lattice} model has {len(names)} constants {list(names)}: give one value (N/m) per name")
        object.__setattr__(self, "reference_constants", ref)
        object.__setattr__(self, "sampling_ranges", _pairs(self.sampling_ranges, "sampling_ranges", len(names), names))
        object.__setattr__(self, "fit_bounds", _pairs(self.fit_bounds, "fit_bounds", len(names), names))
        ext = self.extended_reference.items() if isinstance(self.extended_reference, dict) else self.extended_reference
        try:
            ext = tuple((str(k), float(v)) for k, v in ext)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"extended_reference must map constant names to numbers (N/m), got "
                            f"{self.extended_reference!r}") from exc
        object.__setattr__(self, "extended_reference", ext)
        for attr in ("name", "reference_source", "notes"):
            require(isinstance(getattr(self, attr), str), f"{attr} must be a string")

    # -- constants ----------------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Constant names, shell by shell (fcc 2 shells: 1XX, 1XY, 1ZZ, 2XX, 2YY; bcc: 1XX, 1XY, 2XX, 2YY)."""
        return _names(self.lattice, self.n_shells)

    @property
    def n_constants(self) -> int:
        return len(self.names)

    def lattice_parameter_at(self, temperature_k) -> float | np.ndarray:
        """a(T) in Å at ``temperature_k`` (K)."""
        return self.lattice_parameter.at(temperature_k)

    def check_force_constants(self, fc) -> np.ndarray:
        """Validate a (..., n_constants) array of force constants (N/m); returns a float64 copy."""
        try:
            arr = np.array(fc, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"force constants must be numbers (N/m) in the order {list(self.names)}") from exc
        require(arr.ndim >= 1 and arr.shape[-1] == self.n_constants,
                f"{self.name}: expected {self.n_constants} force constants per set, in the order "
                f"{list(self.names)} (N/m), got shape {arr.shape}: give one value per name")
        require(bool(np.all(np.isfinite(arr))),
                f"{self.name}: force constants contain NaN or infinity: give finite values in N/m")
        return arr

    def bvk_model(self, force_constants=None, temperature_k: float | None = None,
                  lattice_parameter: float | None = None):
        """A :class:`BvKModel` (physics.bvk) of this material: default the reference constants at a(T_ref)."""
        from phonon_ml_core.physics.bvk import BvKModel

        fc = self.reference_constants if force_constants is None else force_constants
        fc = self.check_force_constants(fc)
        if lattice_parameter is None:
            t = self.reference_temperature_k if temperature_k is None else temperature_k
            lattice_parameter = self.lattice_parameter_at(t)
        require(math.isfinite(lattice_parameter) and lattice_parameter > 0,
                f"lattice_parameter = {lattice_parameter!r} must be a positive number of Å")
        return BvKModel(force_constants=fc, lattice_parameter=float(lattice_parameter), mass=self.mass_u,
                        lattice=self.lattice, n_shells=self.n_shells, symbol=self.element)

    def with_shells(self, n_shells: int) -> Material:
        """The same material with ``n_shells`` shells.

        Kept constants keep their reference, sampling range and bounds; new ones get the literature value
        (:attr:`extended_reference`) when known, else 0, with ranges from :func:`sampling_rule` /
        :func:`fit_bounds_rule` applied to the extended reference vector.
        """
        require(isinstance(n_shells, (int, np.integer)) and n_shells >= 1,
                f"n_shells = {n_shells!r}: give a whole number >= 1")
        if n_shells == self.n_shells:
            return self
        new_names = _names(self.lattice, int(n_shells))
        old = dict(zip(self.names, zip(self.reference_constants, self.sampling_ranges, self.fit_bounds)))
        ext = dict(self.extended_reference)
        ref = tuple(old[n][0] if n in old else ext.get(n, 0.0) for n in new_names)
        samp_rule, fit_rule = sampling_rule(ref), fit_bounds_rule(ref)
        samp = tuple(old[n][1] if n in old else samp_rule[i] for i, n in enumerate(new_names))
        bounds = tuple(old[n][2] if n in old else fit_rule[i] for i, n in enumerate(new_names))
        added = [n for n in new_names if n not in old]
        extra = tuple((n, v) for n, v in self.extended_reference if n not in new_names)
        extra += tuple((n, v) for n, (v, _, _) in old.items() if n not in new_names)
        note = (f"{n_shells} shells: added {', '.join(added)} (literature value where known, else 0)" if added
                else f"truncated to {n_shells} shells")
        return replace(self, n_shells=int(n_shells), reference_constants=ref, sampling_ranges=samp,
                       fit_bounds=bounds, extended_reference=extra,
                       notes=(self.notes + "; " if self.notes else "") + note)

    # -- comparison and text -----------------------------------------------------------------------------
    def same_as(self, other: Material) -> bool:
        """True when every field is equal (floats exactly)."""
        return isinstance(other, Material) and self.to_dict() == other.to_dict()

    def same_crystal(self, other: Material) -> bool:
        """True when ``other`` is this crystal, whatever the number of shells of its force-constant model: same
        element, lattice, mass, scattering lengths and a(T). A measured spectrum records the crystal; how many
        shells describe it is the choice of the fit or model that reads it (`fit --shells 4`, a four-shell bundle)."""
        keys = ("element", "lattice", "mass_u", "b_coh_fm", "sigma_coh_barn", "sigma_inc_barn", "lattice_parameter")
        if not isinstance(other, Material):
            return False
        a, b = self.to_dict(), other.to_dict()
        return all(a.get(k) == b.get(k) for k in keys)

    def describe(self) -> str:
        """A few human-readable lines."""
        a293 = self.lattice_parameter_at(293.0)
        consts = ", ".join(f"{n}={v:g}" for n, v in zip(self.names, self.reference_constants))
        lines = [(f"{self.name} ({self.element}, {self.lattice}, {self.n_shells} shells): mass {self.mass_u:g} u, "
                 f"b_coh {self.b_coh_fm:g} fm, σ_coh {self.sigma_coh_barn:g} b, σ_inc {self.sigma_inc_barn:g} b"),
                 f"  a(293 K) = {a293:.4f} Å ({self.lattice_parameter.kind}; {self.lattice_parameter.source})",
                 f"  reference (N/m, {self.reference_temperature_k:g} K): {consts}",
                 f"  source: {self.reference_source}"]
        if self.notes:
            lines.append(f"  notes: {self.notes}")
        return "\n".join(lines)

    # -- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind_of_spec": "material", "format_version": 1,
                "name": self.name, "element": self.element, "lattice": self.lattice, "n_shells": self.n_shells,
                "names": list(self.names), "mass_u": self.mass_u, "b_coh_fm": self.b_coh_fm,
                "sigma_coh_barn": self.sigma_coh_barn, "sigma_inc_barn": self.sigma_inc_barn,
                "lattice_parameter": self.lattice_parameter.to_dict(),
                "reference_constants": list(self.reference_constants), "reference_source": self.reference_source,
                "reference_temperature_k": self.reference_temperature_k,
                "sampling_ranges": [list(p) for p in self.sampling_ranges],
                "fit_bounds": [list(p) for p in self.fit_bounds], "notes": self.notes,
                "extended_reference": dict(self.extended_reference)}

    @classmethod
    def from_dict(cls, data: dict) -> Material:
        """Build from :meth:`to_dict` output. ``sampling_ranges`` / ``fit_bounds`` may be omitted (then the
        §7 rules are applied to the reference); ``names``, when present, must match the lattice and shells."""
        known = {f.name for f in fields(cls)} | {"names"}
        required = {"name", "element", "lattice", "mass_u", "b_coh_fm", "lattice_parameter", "reference_constants"}
        check_keys(data, "material", known, required)
        d = dict(data)
        d.pop("kind_of_spec", None), d.pop("format_version", None)
        listed = d.pop("names", None)
        d.setdefault("n_shells", 2)
        d.setdefault("reference_source", "")
        d.setdefault("sigma_coh_barn", 4 * math.pi * float(d["b_coh_fm"]) ** 2 / 100.0)
        d.setdefault("sigma_inc_barn", 0.0)
        if "sampling_ranges" not in d:
            d["sampling_ranges"] = sampling_rule(d["reference_constants"])
        if "fit_bounds" not in d:
            d["fit_bounds"] = fit_bounds_rule(d["reference_constants"])
        m = cls(**d)
        if listed is not None:
            require(tuple(listed) == m.names, f"material {m.name}: names {list(listed)} do not match the "
                    f"{m.n_shells}-shell {m.lattice} names {list(m.names)}: fix the order or the shell count")
        return m


@cache
def _names(lattice: str, n_shells: int) -> tuple[str, ...]:
    from phonon_ml_core.physics.symmetry import cubic_shells

    return tuple(n for s in cubic_shells(lattice, n_shells) for n in s.names)


# -- built-in materials --------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def builtin_materials() -> dict[str, Material]:
    """The built-in materials (``specs/materials/*.json``), keyed by element symbol."""
    folder = resources.files("phonon_ml_core.specs").joinpath("materials")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            import json

            m = Material.from_dict(json.loads(entry.read_text(encoding="utf-8")))
            out[m.element] = m
    return out


def get_material(name_or_path: str | os.PathLike | Material, n_shells: int | None = None) -> Material:
    """A material: a :class:`Material`, a built-in by element symbol (case-insensitive) or a JSON/YAML file path.

    ``n_shells`` (optional) re-expresses it with that many shells (:meth:`Material.with_shells`).
    """
    if isinstance(name_or_path, Material):
        m = name_or_path
    else:
        require(isinstance(name_or_path, (str, os.PathLike)),
                f"material must be a name, a file path or a Material, got {type(name_or_path).__name__}")
        text = os.fspath(name_or_path)
        known = builtin_materials()
        by_lower = {k.lower(): v for k, v in known.items()}
        p = Path(text)
        if text.strip().lower() in by_lower:
            m = by_lower[text.strip().lower()]
        elif p.suffix.lower() in (".json", ".yaml", ".yml") or p.exists():
            m = Material.from_file(p)
        else:
            raise SpecError(f"unknown material {text!r}: use a built-in element symbol ({', '.join(sorted(known))}) "
                            "or the path of a material file (.json, .yaml)")
    return m if n_shells is None else m.with_shells(n_shells)


_AL_REFERENCE = (10.35, 10.38, -2.77, 2.30, -0.25)

#: Aluminium exactly as the study (conventions §1, §2): Cowley's 80 K eight-shell fit projected on two shells,
#: the a(T) table of §1, sampling 0.5–1.5 × ref with 2YY in [−1, 1] N/m, fit bounds 0.3–2 × ref with 2YY in [−2, 2].
#: ``specs/materials/Al.json`` is written from this (derive_builtin.py); a test keeps them identical.
ALUMINIUM: Material = Material(
    name="Al", element="Al", lattice="fcc", n_shells=2, mass_u=26.9815, b_coh_fm=3.449,
    sigma_coh_barn=1.495, sigma_inc_barn=0.0082,
    lattice_parameter=LatticeParameter(
        kind="table", temperatures_k=(50.0, 150.0, 280.0, 293.0, 350.0, 450.0, 540.0, 640.0),
        values_a=(4.0329, 4.0376, 4.0483, 4.0496, 4.0547, 4.0647, 4.0745, 4.0862),
        source="conventions §1 table (±0.002 Å)"),
    reference_constants=_AL_REFERENCE,
    reference_source="two-shell projection of Cowley, E.R.: Can. J. Phys. 52 (1974) 1714 (80 K, eight shells)",
    sampling_ranges=sampling_rule(_AL_REFERENCE), fit_bounds=fit_bounds_rule(_AL_REFERENCE),
    reference_temperature_k=80.0,
    notes="the study's preset, kept exactly (conventions §1); σ_coh, σ_inc from periodictable")
