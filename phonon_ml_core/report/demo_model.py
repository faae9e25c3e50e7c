"""A small bundle trained on the spot for the demo of a material the shipped bundle does not cover.

A few hundred simulated spectra of the material on the experiment's default grid (its sampling rule), a small
FCVAE and few epochs: seconds to minutes on a laptop CPU. The bundle records the material and experiment of its
data set (``bundle_from_training``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.report.simulation import dataset_for, sampling_for
from phonon_ml_core.simulator import SimulationSettings
from phonon_ml_core.specs import Experiment, Material


@dataclass(frozen=True)
class SmallModelBudget:
    """How much the on-the-spot bundle costs: spectra, latent size, epochs (pretraining, regressor)."""

    n_spectra: int = 400
    latent_dim: int = 6
    pretrain_epochs: int = 30
    regressor_epochs: int = 60
    mesh_density: int = 12
    temperature_range: tuple[float, float] = (20.0, 700.0)


#: The reduced (test) budget: tens of seconds.
QUICK_SMALL_MODEL = SmallModelBudget(n_spectra=120, latent_dim=4, pretrain_epochs=6, regressor_epochs=10,
                                     mesh_density=8)


def small_bundle(material: Material, experiment: Experiment, out_dir: Path, budget: SmallModelBudget,
                 seed: int = 0, log=print) -> tuple[Any | None, str]:
    """(bundle, note): a small bundle of ``material`` on ``experiment`` trained on the spot, and a note saying so."""
    from phonon_ml_core.learn.bundle import bundle_from_training
    from phonon_ml_core.learn.configs import PipelineConfig, StageConfig
    from phonon_ml_core.learn.pipeline import train_pipeline

    path = out_dir / f"{material.element.lower()}_training_set.h5"
    config = sampling_for(material, seed=seed, temperature_range=budget.temperature_range)
    log(f"simulating {budget.n_spectra} training spectra of {material.name} on {experiment.instrument} "
        f"(Ei = {experiment.ei_mev:g} meV)")
    dataset_for(path, budget.n_spectra, material, experiment, config,
                SimulationSettings(mesh_density=budget.mesh_density), overwrite=True, progress=False)
    data = Spectrum.from_hdf5(path)
    cfg = PipelineConfig(family="fcvae", latent_dim=budget.latent_dim,
                         pretrain=StageConfig(epochs=budget.pretrain_epochs, batch_size=32, patience=None),
                         regressor=StageConfig(epochs=budget.regressor_epochs, batch_size=64, patience=None),
                         finetune_epochs=0, extended_epochs=0, physics_steps=0, physics_finetune_steps=0,
                         seed=seed)
    log(f"training a small FCVAE bundle ({budget.pretrain_epochs} + {budget.regressor_epochs} epochs)")
    result = train_pipeline(data, cfg, progress=False)
    bundle = bundle_from_training(result, data.grid, data={"simulated": {"path": str(path), "n": data.n_spectra}})
    return bundle, (f"prediction by a small bundle trained on the spot ({data.n_spectra} simulated spectra, "
                    f"FCVAE latent {budget.latent_dim}, {budget.pretrain_epochs} + {budget.regressor_epochs} "
                    "epochs); the shipped bundle is aluminium/ARCS-50 only")
