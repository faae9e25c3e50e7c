"""Ensembles of model bundles: independently trained bundles of one material, experiment and grid whose
predictions are averaged (a deep ensemble, docs/training.md "Ensembles").

An ensemble is a **directory** holding its members, each a complete bundle (:mod:`.bundle`)::

    ENSEMBLE/
      metadata.json     kind "ensemble", the member folders, and the members' material, experiment, grid,
                        targets and quantity (so torch-free readers see what any bundle records)
      member_0/ …       one bundle per member

It is written into a temporary sibling directory and renamed into place, like a bundle. The prediction of an
ensemble is the mean of its members' predictions; its ``std`` combines the members' own spread over latent
draws with the spread between the members (law of total variance), which also carries the model's imprecision
on data unlike its training set; ``member_spread`` is the between-member part alone.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from phonon_ml_core.data.fileio import write_bundle_folder
from phonon_ml_core.learn.bundle import BUNDLE_FORMAT, BUNDLE_VERSION, Bundle, load_bundle, write_metadata
from phonon_ml_core.learn.bundle_metadata import read_bundle_metadata
from phonon_ml_core.learn.targets import LINEWIDTH, Targets
from phonon_ml_core.specs import Experiment, Material
from phonon_ml_core.specs.grid import Grid

ENSEMBLE_KIND = "ensemble"
#: Metadata every member shares and the ensemble's metadata.json repeats.
SHARED_METADATA = ("normalization", "quantity", "targets", "material", "experiment", "force_constants",
                   "instrument", "ei_mev", "grid")
_MEMBER_NAME = re.compile(r"^member_\d+$")


@dataclass(eq=False)
class EnsembleBundle:
    """Bundles of one material, experiment, grid and targets used together; :meth:`predict` as a bundle's."""

    members: list[Bundle]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"an ensemble needs at least two member bundles, got {len(self.members)}")
        first = self.members[0]
        for i, m in enumerate(self.members[1:], start=1):
            if not isinstance(m, Bundle):
                raise ValueError(f"ensemble member {i} is a {type(m).__name__}, not a single bundle: nest no ensembles")
            problems = []
            if not m.material.same_as(first.material):
                problems.append(f"material {m.material.name} ({m.material.n_shells} shells) ≠ {first.material.name} "
                                f"({first.material.n_shells} shells)")
            if not m.experiment.same_as(first.experiment):
                problems.append(f"experiment {m.experiment.instrument} Ei {m.experiment.ei_mev:g} meV ≠ "
                                f"{first.experiment.instrument} Ei {first.experiment.ei_mev:g} meV")
            if not m.grid.same_as(first.grid):
                problems.append("another grid or mask")
            if m.target_names != first.target_names:
                problems.append(f"targets {list(m.target_names)} ≠ {list(first.target_names)}")
            if m.metadata.get("quantity", "chi''") != first.metadata.get("quantity", "chi''"):
                problems.append(f"quantity {m.metadata.get('quantity')!r} ≠ {first.metadata.get('quantity')!r}")
            if problems:
                raise ValueError(f"ensemble member {i} does not match member 0: {'; '.join(problems)}. Ensemble only "
                                 "bundles trained for the same material, experiment, grid and targets")
        meta = {k: copy.deepcopy(first.metadata[k]) for k in SHARED_METADATA if k in first.metadata}
        meta.update({k: v for k, v in self.metadata.items() if k not in ("members", "kind")})
        meta.setdefault("material", first.material.to_dict())
        meta.setdefault("experiment", first.experiment.to_dict())
        meta.setdefault("targets", list(first.target_names))
        meta["grid"] = first.grid.to_dict()
        self.metadata = meta

    # -- what a bundle exposes ---------------------------------------------------------
    @property
    def grid(self) -> Grid:
        return self.members[0].grid

    @property
    def material(self) -> Material:
        return self.members[0].material

    @property
    def experiment(self) -> Experiment:
        return self.members[0].experiment

    @property
    def targets(self) -> Targets:
        return self.members[0].targets

    @property
    def target_names(self) -> tuple[str, ...]:
        return self.members[0].target_names

    @property
    def names(self) -> tuple[str, ...]:
        return self.members[0].names

    @property
    def predicts_linewidth(self) -> bool:
        return self.members[0].predicts_linewidth

    @property
    def requires_temperature(self) -> bool:
        return any(m.requires_temperature for m in self.members)

    @property
    def family(self) -> str:
        return "ensemble of " + "+".join(dict.fromkeys(m.family for m in self.members))

    def check_data(self, spectra, what: str = "the input spectra") -> None:
        self.members[0].check_data(spectra, what)

    def predict(self, spectra, n_samples: int = 10000, seed: int = 0,
                temperature: float | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The members' :meth:`Bundle.predict` combined: ``mean``, ``mean_code_prediction`` and ``linewidth`` the
        members' means; ``std`` and ``linewidth_std`` √(mean of the members' variances + variance of their means);
        ``member_spread`` the standard deviation of the members' means (N/m), same shapes."""
        preds = [m.predict(spectra, n_samples=n_samples, seed=seed + 7919 * i, temperature=temperature)
                 for i, m in enumerate(self.members)]

        def total(mean_key: str, std_key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            means = np.stack([np.asarray(p[mean_key], float) for p in preds])
            stds = np.stack([np.asarray(p[std_key], float) for p in preds])
            spread = means.std(0)
            return means.mean(0), np.sqrt((stds ** 2).mean(0) + spread ** 2), spread

        mean, std, spread = total("mean", "std")
        out = {"mean_code_prediction": np.mean([p["mean_code_prediction"] for p in preds], 0), "mean": mean,
               "std": std, "member_spread": spread}
        if self.predicts_linewidth:
            out[LINEWIDTH], out[f"{LINEWIDTH}_std"], _ = total(LINEWIDTH, f"{LINEWIDTH}_std")
        return out

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False, weights_dtype: str = "float32") -> Path:
        """Write the ensemble directory atomically (each member with :meth:`Bundle.save`)."""
        names = [f"member_{i}" for i in range(len(self.members))]

        def fill(tmp: Path) -> None:
            for name, m in zip(names, self.members):
                m.save(tmp / name, weights_dtype=weights_dtype)
            write_metadata(tmp, {**self.metadata, "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION,
                                 "kind": ENSEMBLE_KIND, "members": names})

        target = write_bundle_folder(path, overwrite, fill)
        return target


def is_ensemble(path: str | os.PathLike) -> bool:
    """True when ``path`` is an ensemble directory (its metadata.json says kind "ensemble")."""
    try:
        return read_bundle_metadata(path)[1].get("kind") == ENSEMBLE_KIND
    except (OSError, ValueError):
        return False


def load_ensemble(path: str | os.PathLike, grid: Grid | None = None) -> EnsembleBundle:
    """Load and validate an ensemble directory: every member with :func:`load_bundle` (hashes, architecture,
    grid), member folders only inside the ensemble (names ``member_N``)."""
    p, meta = read_bundle_metadata(path)
    if meta.get("format") != BUNDLE_FORMAT or meta.get("kind") != ENSEMBLE_KIND:
        raise ValueError(f"{p} is not a phonon-ml ensemble (metadata format {meta.get('format')!r}, kind "
                         f"{meta.get('kind')!r})")
    if meta.get("format_version") != BUNDLE_VERSION:
        raise ValueError(f"{p} has bundle format version {meta.get('format_version')}; this phonon-ml reads "
                         f"version {BUNDLE_VERSION}: retrain or upgrade phonon-ml")
    names = meta.get("members")
    if not isinstance(names, list) or not all(isinstance(n, str) and _MEMBER_NAME.match(n) for n in names):
        raise ValueError(f"{p / 'metadata.json'}: 'members' must list the member folders member_0, member_1, …; "
                         f"got {names!r}: the ensemble is corrupted")
    members = [load_bundle(p / n, grid=grid) for n in names]
    return EnsembleBundle(members, {k: v for k, v in meta.items() if k not in ("members", "kind", "format",
                                                                                  "format_version")})


def load_model(path: str | os.PathLike, grid: Grid | None = None) -> Bundle | EnsembleBundle:
    """A bundle or an ensemble of bundles, whichever ``path`` holds (what ``predict`` and ``finetune`` load)."""
    return load_ensemble(path, grid) if is_ensemble(path) else load_bundle(path, grid=grid)


def build_ensemble(paths: list[str | os.PathLike], description: str | None = None) -> EnsembleBundle:
    """An ensemble of the bundles at ``paths`` (each a single bundle; an ensemble's members are taken one by one)."""
    members: list[Bundle] = []
    for path in paths:
        m = load_model(path)
        members.extend(m.members if isinstance(m, EnsembleBundle) else [m])
    meta = {"ensemble_sources": [str(Path(p).resolve()) for p in paths]}
    if description:
        meta["description"] = description
    return EnsembleBundle(members, meta)
