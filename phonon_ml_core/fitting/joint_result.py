"""The result of a joint fit (:class:`JointResult`): one entry per spectrum plus the series model."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from phonon_ml_core.data.jsonio import to_jsonable
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.frequencies import frequency_fields
from phonon_ml_core.fitting.identifiability import identifiability
from phonon_ml_core.fitting.joint_model import SeriesModel
from phonon_ml_core.fitting.joint_problem import JointProblem
from phonon_ml_core.fitting.problem import LINEWIDTH
from phonon_ml_core.fitting.results import msq_combination, spec_fields
from phonon_ml_core.physics.units import FC_TO_MEV2, MEV_PER_THZ
from phonon_ml_core.specs import Experiment, Material

BACKGROUND_MODEL = ("normalise(y_sim + b0 + b1*(E - energy_mean)); b in units of the span of the mean-normalised "
                    "simulated spectrum, b1 per meV; b0 cancels in the normalisation and is reported as 0")


@dataclass
class JointResult:
    """Outcome of :func:`~phonon_ml_core.fitting.joint.fit_joint`.

    Attributes:
        entries: one RESULT.json-style dict per input spectrum (constants at its T, std inflated for model error,
            ``std_statistical``, covariance, NMSE, γ, background, frequencies, identifiability).
        series: the series model: kind, T̄ and ΔT (K), coefficients (n_coefficients × K, N/m), their covariance,
            smoothness (free model) and its validation, inflation details.
        temperature (N,) K; force_constants, std (N, K) N/m; nmse (N,).
        material, experiments; seconds; evaluations (batched objective calls); converged; message.
    """

    entries: list[dict[str, Any]]
    series: dict[str, Any]
    temperature: np.ndarray
    force_constants: np.ndarray
    std: np.ndarray
    nmse: np.ndarray
    material: Material
    experiments: list[Experiment]
    seconds: float
    evaluations: int
    converged: bool
    message: str
    covariances: list[np.ndarray] = field(default_factory=list)

    @property
    def names(self) -> tuple[str, ...]:
        return self.material.names

    @property
    def mean_nmse(self) -> float:
        return float(np.mean(self.nmse))

    def constants_at(self, temperature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Constants (M, K) N/m and their std (M, K) from the series model at ``temperature`` (M,) K."""
        model = SeriesModel(self.series["model"], np.asarray(self.series["temperatures"], float))
        x = model.design(np.asarray(temperature, float).reshape(-1))
        c = np.asarray(self.series["coefficients"], float)
        cov = np.asarray(self.series["covariance"], float)
        k = len(self.names)
        fc = x @ c
        std = np.array([[np.sqrt(max(float(np.kron(row, np.eye(k))[j] @ cov @ np.kron(row, np.eye(k))[j]), 0.0))
                         for j in range(k)] for row in x]) if np.all(np.isfinite(cov)) else np.full(fc.shape, np.nan)
        return fc, std

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"results": entries, "series": the series model, "material", "names", "mean_nmse", …}."""
        return to_jsonable({"results": self.entries, "series": self.series, "material": self.material.name,
                            "names": list(self.names), "mean_nmse": self.mean_nmse, "seconds": self.seconds,
                            "evaluations": self.evaluations, "converged": self.converged, "message": self.message})


def build_result(prob: JointProblem, theta: np.ndarray, material: Material, experiments: list[Experiment],
                 spectra: list[Spectrum], unc: dict | None, seconds: float, converged: bool, message: str,
                 smoothness: float | None, validation: dict | None, slopes: list) -> JointResult:
    """Assemble the :class:`JointResult` from the optimum θ and the covariance dictionary (or None)."""
    k, d, n = prob.n_constants, prob.model.n_coefficients, prob.n_spectra
    t = torch.as_tensor(theta[None])
    fc_raw, lw = prob.unpack(t)
    _, fc_c, lw_c = prob.wall(fc_raw, lw)
    with torch.no_grad():
        nm, _ = prob.nmse(t)
    fc = fc_c[0].detach().numpy()
    gam = None if lw_c is None else lw_c[0].detach().numpy()
    p = prob.n_params
    cov_all = None if unc is None else unc["covariance"]
    cov_stat = None if unc is None else unc["covariance_statistical"]
    x = prob.model.design()
    slope_of = np.zeros(n)
    for g, s in zip(prob.groups, slopes):
        slope_of[g.index] = s[0].numpy()
    entries, covs, stds = [], [], []
    for i in range(n):
        gmat = np.kron(x[i], np.eye(k))  # (K, d·K): ∂fc_i/∂C
        cov_i = np.full((k, k), np.nan) if cov_all is None else gmat @ cov_all[:prob.n_coef, :prob.n_coef] @ gmat.T
        std_i = np.sqrt(np.clip(np.diag(cov_i), 0, None))
        stat_i = None if cov_stat is None else np.sqrt(np.clip(np.diag(
            gmat @ cov_stat[:prob.n_coef, :prob.n_coef] @ gmat.T), 0, None))
        lw_std = None
        if prob.fit_linewidth and cov_all is not None:
            lw_std = float(np.sqrt(max(cov_all[prob.n_coef + i, prob.n_coef + i], 0.0)))
        b1_std = None
        if prob.fit_background and cov_all is not None:
            b1_std = float(np.sqrt(max(cov_all[p + i, p + i], 0.0)))
        e = None
        if prob.fit_background:
            for g in prob.groups:
                if i in g.index:
                    e = float(np.asarray(spectra[i].grid.energy, float)[:, None].repeat(
                        spectra[i].grid.shape[1], 1)[g.mask.numpy()].mean())
        entry = {
            "force_constants": fc[i].tolist(), "std": std_i.tolist(),
            "std_statistical": None if stat_i is None else stat_i.tolist(),
            **spec_fields(material, experiments[i]), "units": "N/m", "nmse": float(nm[0, i]),
            "temperature": float(prob.temperature[i]),
            "lattice_parameter": float(material.lattice_parameter_at(prob.temperature[i])),
            LINEWIDTH: None if gam is None else float(gam[i]), "linewidth_std": lw_std,
            "covariance": cov_i, "mean_square_frequency_combination": float(msq_combination(fc[i], material)),
            "rms_frequency_thz": rms_frequency_thz(fc[i], material),
            **frequency_fields(material, fc[i], covariance=cov_i if np.all(np.isfinite(cov_i)) else None),
            "background": None if not prob.fit_background else {
                "b0": 0.0, "b1": float(slope_of[i]), "b1_std": b1_std, "energy_mean": e, "model": BACKGROUND_MODEL},
            "identifiability": identifiability(fc[i], cov_i, material.names),
            "method": f"joint-{prob.model.kind}", "converged": bool(converged),
        }
        entries.append(entry)
        covs.append(cov_i)
        stds.append(std_i)
    c = theta[:prob.n_coef].reshape(d, k)
    series = {
        "model": prob.model.kind, "temperatures": prob.temperature.tolist(), "temperature_centre": prob.model.centre,
        "temperature_scale": prob.model.scale,
        "parametrisation": ("fc_k(T) = sum_j C[j][k] * tau**j, tau = (T - temperature_centre) / temperature_scale"
                            if prob.model.kind != "free" else "fc_k(T_i) = C[i][k] (one set per temperature)"),
        "coefficients": c.tolist(), "names": list(material.names),
        "covariance": np.full((prob.n_coef, prob.n_coef), np.nan) if cov_all is None
        else cov_all[:prob.n_coef, :prob.n_coef],
        "smoothness": smoothness, "smoothness_validation": validation,
        "prior": None if prob.prior is None else prob.prior.to_dict(),
        "inflation": None if unc is None else unc["inflation"], "sigma2": None if unc is None else unc["sigma2"],
        "uncertainty_note": None if unc is None else unc["note"],
    }
    return JointResult(entries=entries, series=to_jsonable(series), temperature=prob.temperature.copy(),
                       force_constants=fc, std=np.array(stds), nmse=nm[0].numpy(), material=material,
                       experiments=list(experiments), seconds=seconds, evaluations=prob.calls, converged=converged,
                       message=message, covariances=covs)


def rms_frequency_thz(fc: np.ndarray, material: Material) -> float:
    """sqrt(⟨ω²⟩)/2π in THz from the M⟨ω²⟩ combination (N/m) and the atomic mass."""
    msq = float(msq_combination(fc, material))
    return float(np.sqrt(max(msq, 0.0) * FC_TO_MEV2 / material.mass_u) / MEV_PER_THZ)
