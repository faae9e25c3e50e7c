"""The result of one fit (:class:`FitResult`) and the fields every RESULT.json entry shares with predict."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from phonon_ml_core.data.jsonio import to_jsonable
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.calibration import STD_MEANING
from phonon_ml_core.fitting.frequencies import frequency_fields
from phonon_ml_core.fitting.problem import LINEWIDTH
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material


@dataclass
class FitResult:
    """Outcome of :func:`fit_spectrum`.

    Attributes:
        force_constants: best constants, N/m, (K,) in the order of :attr:`names` (the material's).
        std: one-sigma uncertainties of the constants, N/m, (K,) (NaN when the curvature is singular): the
            Gauss–Newton (statistical) std, a lower bound when the residual is dominated by model error.
        std_calibrated: the std calibrated for model error (lack of fit, span normalisation; fitting.calibration,
            :data:`~phonon_ml_core.fitting.calibration.STD_MEANING`), N/m, (K,); None when not computed.
        linewidth: fitted γ (HWHM = γ·E) when it was free, the fixed value given, or None.
        linewidth_std: its uncertainty when fitted, else None.
        nmse: NMSE of the simulated spectrum against the (normalised) input at the best point.
        evaluations: simulator calls (a batched call counts once), including the uncertainty estimate.
        spectra_simulated: spectra simulated in all those calls.
        seconds: wall time of the fit (optimisation and uncertainty; not the simulator construction).
        converged: whether the optimiser met its tolerance before its evaluation budget.
        message: the optimiser's message and any notes (normalisation, clipping).
        method: "nelder-mead" or "gradient".
        temperature, lattice_parameter: those used (K, Å; lattice None = the simulator's a(T)).
        start: the starting constants.
        correlation: correlation matrix of the free parameters (K constants, then γ when fitted, then b1 with
            ``fit_background``).
        simulated: the model spectrum at the best point (mean-normalised, same grid; with ``fit_background`` it
            includes the fitted background, i.e. it is exactly what the NMSE compares with the input).
        background: with ``fit_background``, the coefficients (b0, b1) of b(E) = b0 + b1·(E − Ē) added to the
            mean-normalised simulated spectrum before normalisation (units: its span; b1 per meV). b0 cancels in the
            mean normalisation (it is not identifiable) and is reported as 0. None without ``fit_background``.
        background_std: (b0_std, b1_std) (b0_std None: not identifiable), or None.
        background_energy_mean: Ē (meV), the mean energy transfer over the valid pixels, or None.
        material, experiment: the material fitted and the experiment whose resolution was simulated.
        at_bounds: names of the parameters that ended on a bound of their range.
        linewidth_offset, linewidth_offset_std: γ0 (meV) of an affine linewidth HWHM = γ0 + γ·E and its std, when
            fitted (``linewidth_model="affine"``), else None.
        prior: the Gaussian priors on the constants (:meth:`~phonon_ml_core.fitting.priors.GaussianPrior.to_dict`),
            or None.
    """

    force_constants: np.ndarray
    std: np.ndarray
    linewidth: float | None
    nmse: float
    evaluations: int
    seconds: float
    converged: bool
    message: str
    method: str
    temperature: float
    lattice_parameter: float | None = None
    linewidth_std: float | None = None
    spectra_simulated: int = 0
    start: np.ndarray | None = None
    correlation: np.ndarray | None = None
    simulated: Spectrum | None = None
    background: tuple[float, float] | None = None
    background_std: tuple[float | None, float | None] | None = None
    background_energy_mean: float | None = None
    material: Material = ALUMINIUM
    experiment: Experiment | None = None
    at_bounds: tuple[str, ...] = ()
    linewidth_offset: float | None = None
    linewidth_offset_std: float | None = None
    prior: dict | None = None
    std_calibrated: np.ndarray | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the constants (the material's)."""
        return self.material.names

    @property
    def covariance(self) -> np.ndarray:
        """(K, K) covariance of the constants, (N/m)² (from the correlation and std; diagonal without one)."""
        k = len(self.force_constants)
        std = np.asarray(self.std, dtype=float)
        if self.correlation is None:
            return np.diag(std ** 2)
        corr = np.asarray(self.correlation, dtype=float)[:k, :k]
        return corr * np.outer(std, std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the RESULT.json entry of ``phonon-ml fit``, conventions §6)."""
        out = {
            "force_constants": [float(x) for x in self.force_constants],
            "std": [None if not np.isfinite(x) else float(x) for x in self.std],
            "std_meaning": "one-sigma Gauss-Newton (statistical) std: a lower bound under model error; see "
                           "std_calibrated",
            "std_calibrated": None if self.std_calibrated is None
            else [None if not np.isfinite(x) else float(x) for x in self.std_calibrated],
            "std_calibrated_meaning": STD_MEANING,
            **spec_fields(self.material, self.experiment),
            "units": "N/m",
            "nmse": float(self.nmse),
            "evaluations": int(self.evaluations),
            "spectra_simulated": int(self.spectra_simulated),
            "seconds": float(self.seconds),
            "converged": bool(self.converged),
            "at_bounds": list(self.at_bounds),
            "message": self.message,
            "method": self.method,
            "temperature": float(self.temperature),
            "lattice_parameter": None if self.lattice_parameter is None else float(self.lattice_parameter),
            LINEWIDTH: None if self.linewidth is None else float(self.linewidth),
            "linewidth_std": None if self.linewidth_std is None or not np.isfinite(self.linewidth_std)
            else float(self.linewidth_std),
            "linewidth_offset": None if self.linewidth_offset is None else float(self.linewidth_offset),
            "linewidth_offset_std": None if self.linewidth_offset_std is None
            or not np.isfinite(self.linewidth_offset_std) else float(self.linewidth_offset_std),
            "prior": self.prior,
            "start": None if self.start is None else [float(x) for x in self.start],
            "covariance": self.covariance,
            "mean_square_frequency_combination": float(msq_combination(self.force_constants, self.material)),
            **frequency_fields(self.material, self.force_constants, covariance=self.covariance),
            "background": None if self.background is None else {
                "b0": float(self.background[0]), "b1": float(self.background[1]),
                "b1_std": None if self.background_std is None or self.background_std[1] is None
                or not np.isfinite(self.background_std[1]) else float(self.background_std[1]),
                "energy_mean": None if self.background_energy_mean is None else float(self.background_energy_mean),
                "model": "normalise(y_sim + b0 + b1*(E - energy_mean)); b in units of the span of the mean-normalised "
                         "simulated spectrum, b1 per meV; b0 cancels in the normalisation and is reported as 0"},
        }
        return to_jsonable(out)


def spec_fields(material: Material, experiment: Experiment | None) -> dict[str, Any]:
    """The RESULT.json entries naming what was fitted or predicted (conventions §6): ``names`` (the constants'),
    ``material`` (its name), ``lattice``, and the full ``material_spec`` and ``experiment`` dicts."""
    return {"names": list(material.names), "material": material.name, "lattice": material.lattice,
            "material_spec": material.to_dict(), "experiment": None if experiment is None else experiment.to_dict()}


def msq_coefficients(material: Material) -> np.ndarray:
    """(K,) coefficients c with M⟨ω²⟩ = c · fc (N/m): ⟨1 − cos q·r⟩ over the zone is 1, so M⟨ω²⟩ = ⅓ Σ_l Tr φ(l)."""
    basis = material.bvk_model().bond_basis  # (L, K, 3, 3)
    return np.einsum("lkii->k", basis) / 3.0


def msq_combination(fc: np.ndarray, material: Material | None = None) -> np.ndarray:
    """M⟨ω²⟩ over the Brillouin zone in N/m, well pinned by powder data (conventions §1).

    fcc two shells: 4(2·1XX + 1ZZ) + 2(2XX + 2·2YY). ``fc`` (..., K); ``material`` default ALUMINIUM.
    """
    return np.asarray(fc, dtype=float) @ msq_coefficients(ALUMINIUM if material is None else material)


#: A parameter within this fraction of its bound range from a bound ended on the bound: ten times the Nelder–Mead
#: simplex tolerance on the unit box (xatol 1e-4), which stops short of an active bound by up to about that much.
AT_BOUND_TOLERANCE = 1.0e-3


def parameters_at_bounds(u: np.ndarray, names: tuple[str, ...] | list[str],
                         tolerance: float = AT_BOUND_TOLERANCE) -> tuple[str, ...]:
    """Names of the parameters whose position ``u`` in the unit box (0 = lower bound, 1 = upper) lies within
    ``tolerance`` of a bound (the 280 K aluminium fit ends 1.2e-5 of the range below 2XX's upper bound)."""
    u = np.asarray(u, dtype=float)
    return tuple(names[i] for i in np.where((u <= tolerance) | (u >= 1.0 - tolerance))[0])
