"""Least-squares fits of a material's force constants to one powder spectrum (:func:`fit_spectrum`).

Both methods minimise the NMSE of conventions §3 between the (mean-normalised) input spectrum and the
spectrum the :class:`~phonon_ml_core.simulator.powder.PowderSimulator` gives for the trial constants:

* ``"nelder-mead"``: scipy's bounded Nelder–Mead on parameters scaled to the unit box (:mod:`.nelder_mead`);
* ``"gradient"``: torch autograd through the simulator: several starts optimised together (projected Adam on
  one batched simulator call per step), then the best start polished by L-BFGS-B with exact gradients
  (:mod:`.gradient`).

The material (names, start, bounds, a(T), mass) and the experiment (resolution) come from the arguments, the
spectrum, or the defaults (:mod:`.inputs`). Optionally the intrinsic linewidth γ (HWHM = γ·E) is a named nuisance
parameter ("linewidth"), and a residual background linear in energy transfer is profiled out (``fit_background``,
:mod:`.problem`). Standard deviations come from the Gauss–Newton curvature (:mod:`.uncertainty`). See
docs/fitting.md. Series of fits: :mod:`.series`; the result: :mod:`.results`.
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.data.validation import check_device, check_interval, check_number, check_spectrum_values
from phonon_ml_core.fitting.defaults import FIT_DEFAULTS, METHODS
from phonon_ml_core.fitting.gradient import fit_gradient
from phonon_ml_core.fitting.inputs import (
    prepare_spectrum,
    resolve_experiment,
    resolve_material,
    resolve_start_and_bounds,
)
from phonon_ml_core.fitting.linewidth import LINEWIDTH_OFFSET, OFFSET_BOUNDS, OFFSET_START, check_linewidth_model
from phonon_ml_core.fitting.nelder_mead import fit_nelder_mead
from phonon_ml_core.fitting.priors import GaussianPrior
from phonon_ml_core.fitting.problem import LINEWIDTH, UNSTABLE_PENALTY, FitProblem
from phonon_ml_core.fitting.results import FitResult, parameters_at_bounds
from phonon_ml_core.fitting.uncertainty import calibrated_from_jacobian, gauss_newton_jacobian, gauss_newton_std
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
from phonon_ml_core.specs import Experiment, Material

__all__ = ["LINEWIDTH_BOUNDS", "LINEWIDTH_START", "METHODS", "fit_spectrum"]

#: Default start and bounds of the linewidth γ (HWHM = γ·E) when it is fitted (:mod:`.defaults`).
LINEWIDTH_START = FIT_DEFAULTS.linewidth_start
LINEWIDTH_BOUNDS = FIT_DEFAULTS.linewidth_bounds
#: Simulator precision per method. Nelder–Mead compares NMSE values to 10⁻⁶ (fatol), far above float32 rounding,
#: and reaches the same optimum at about 1.6× less cost per call; the gradient fit's L-BFGS line searches need
#: float64 (in float32 they stop short: "not converged").
FIT_DTYPES = {"nelder-mead": torch.float32, "gradient": torch.float64}


def fit_spectrum(spectrum: Spectrum, method: str = FIT_DEFAULTS.method, start=None, bounds=None,
                 fit_linewidth: bool = FIT_DEFAULTS.fit_linewidth, temperature: float | None = None,
                 lattice_parameter: float | None = None, seed: int = FIT_DEFAULTS.seed,
                 max_evaluations: int | None = None, n_starts: int = FIT_DEFAULTS.n_starts,
                 adam_steps: int = FIT_DEFAULTS.adam_steps, n_polish: int = FIT_DEFAULTS.n_polish,
                 linewidth: float | None = None, linewidth_bounds: tuple[float, float] = LINEWIDTH_BOUNDS,
                 settings: SimulationSettings | None = None, simulator: PowderSimulator | None = None,
                 uncertainty: bool = FIT_DEFAULTS.uncertainty, threads: int | None = FIT_DEFAULTS.threads,
                 fit_background: bool = FIT_DEFAULTS.fit_background,
                 background_bounds: tuple[float, float] | None = None, material: Material | None = None,
                 experiment: Experiment | None = None, linewidth_model: str = "proportional",
                 prior: GaussianPrior | None = None, device: str = "cpu") -> FitResult:
    """Fit the material's force constants (with the linewidth γ and a background slope by default) to one spectrum.

    The defaults are :data:`~phonon_ml_core.fitting.defaults.FIT_DEFAULTS`, the same as ``phonon-ml fit`` and the
    Mantid algorithm: Nelder–Mead, γ free, background slope profiled out. Pass ``fit_linewidth=False`` and
    ``fit_background=False`` for the bare model (constants only).

    Args:
        spectrum: one spectrum (χ'' or S, mean-normalised; others are normalised with a note).
        method: "nelder-mead" or "gradient".
        start: starting constants (N/m, one per name of the material): its reference constants when None, or an
            ML prediction.
        bounds: (K, 2) (low, high) per constant, N/m; default the material's ``fit_bounds`` (widened to hold the
            start).
        fit_linewidth: fit γ (HWHM = γ·E) as an extra, nuisance parameter named "linewidth" (default True).
        temperature: K; default the spectrum's own.
        lattice_parameter: Å; default the material's a(T).
        seed: seeds the extra starts of the gradient fit (Nelder–Mead is deterministic anyway).
        max_evaluations: simulator-call budget (default 300 per parameter for Nelder–Mead, 200 for gradient).
        n_starts, adam_steps, n_polish: multi-start batch size, batched Adam steps, and how many of the best
            starts L-BFGS-B polishes (gradient fit).
        linewidth: the fixed γ when not fitted (None = no intrinsic linewidth), else its start.
        settings / simulator: simulator settings, or a ready simulator on the spectrum's grid.
        uncertainty: compute the std (one extra batched simulator call).
        threads: torch intra-op threads during the fit (default 1: the per-call work is small and several
            threads are slower when the cores are shared; None = leave torch's setting).
        fit_background: (default True) model a residual background b(E) = b0 + b1·(E − Ē), flat in |Q| and linear
            in energy transfer (units: the span of the mean-normalised simulated spectrum; b1 per meV), as
            normalise(y_sim + b(E)). b1 is profiled out exactly at each evaluation (variable projection, no extra
            optimiser parameter); b0 cancels in the mean normalisation and is reported as 0.
        background_bounds: (low, high) for b1 (per meV); default ±2 spans over the energy range of the pixels.
        material: what is fitted (:class:`~phonon_ml_core.specs.Material`); default the spectrum's, else ALUMINIUM.
            A spectrum that records another material is refused.
        experiment: instrument, chopper and Ei of the resolution; default the spectrum's, else its grid with the
            instrument's default settings (ARCS-100-1.5-AST at 300 Hz for ARCS at 50 meV). Its Ei must be the
            spectrum's.
        linewidth_model: "proportional" (HWHM = γ·E) or "affine" (HWHM = γ0 + γ·E, γ0 the extra nuisance parameter
            "linewidth_offset" in meV; needs ``fit_linewidth``), :mod:`.linewidth`.
        prior: Gaussian priors on the constants (:func:`phonon_ml_core.fitting.priors.reference_prior`), added to
            the objective; the reported NMSE is the data's alone.
        device: torch device of the simulator (``cuda`` for a GPU); the optimiser and the result stay on the CPU.
    """
    affine = check_linewidth_model(linewidth_model) == "affine"
    if affine and not fit_linewidth:
        raise ValueError("linewidth_model='affine' fits HWHM = γ0 + γ·E: it needs fit_linewidth=True")
    check_fit_arguments(spectrum, temperature, max_evaluations, linewidth_bounds, lattice_parameter,
                        linewidth=linewidth, seed=seed, n_starts=n_starts, adam_steps=adam_steps, n_polish=n_polish)
    device = check_device(device, "device")
    with torch_threads(threads):
        return _fit_spectrum(spectrum, method, start, bounds, fit_linewidth, temperature, lattice_parameter, seed,
                             max_evaluations, n_starts, adam_steps, n_polish, linewidth, linewidth_bounds, settings,
                             simulator, uncertainty, fit_background, background_bounds, material, experiment,
                             affine, prior, device)


def check_fit_arguments(spectrum: Spectrum, temperature: float | None, max_evaluations: int | None,
                        linewidth_bounds: tuple[float, float], lattice_parameter: float | None,
                        linewidth: float | None = None, seed: int = 0, n_starts: int = 1, adam_steps: int = 0,
                        n_polish: int = 0) -> None:
    """Entry checks of :func:`fit_spectrum` (before any simulator is built): a Spectrum with finite values and a
    temperature, a positive budget, increasing linewidth bounds (γ ≥ 0), a non-negative γ, a positive lattice
    parameter (Å), and whole numbers for the seed and the gradient fit's counts."""
    check_spectrum_values(spectrum, "the spectrum to fit", temperature=temperature)
    if max_evaluations is not None:
        check_number(max_evaluations, "max_evaluations", low=1, low_inclusive=True, integer=True)
    check_interval(linewidth_bounds, "linewidth_bounds", low=0.0)
    if linewidth is not None:
        check_number(linewidth, "linewidth", low=0.0, low_inclusive=True, unit="(γ, HWHM = γ·E)")
    if lattice_parameter is not None:
        check_number(lattice_parameter, "lattice_parameter", low=0.0, unit="Å")
    check_number(seed, "seed", low=0, low_inclusive=True, integer=True)
    check_number(n_starts, "n_starts", low=1, low_inclusive=True, integer=True)
    check_number(adam_steps, "adam_steps", low=0, low_inclusive=True, integer=True)
    check_number(n_polish, "n_polish", low=0, low_inclusive=True, integer=True)


@contextlib.contextmanager
def torch_threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(old)


class OnHost:
    """A simulator on an accelerator as the fit sees it: its inputs may be CPU tensors (the simulator moves them,
    autograd included) and its spectra come back to the CPU; everything else is the simulator's."""

    def __init__(self, sim: PowderSimulator):
        self.sim = sim

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        return self.sim(*args, **kwargs).cpu()

    def __getattr__(self, name: str):
        return getattr(self.sim, name)


def _fit_spectrum(spectrum, method, start, bounds, fit_linewidth, temperature, lattice_parameter, seed,
                  max_evaluations, n_starts, adam_steps, n_polish, linewidth, linewidth_bounds, settings, simulator,
                  uncertainty, fit_background=False, background_bounds=None, material=None, experiment=None,
                  affine=False, prior=None, device="cpu") -> FitResult:
    method = method.lower().replace("_", "-")
    if method in ("nm", "neldermead"):
        method = "nelder-mead"
    if method not in METHODS:
        raise ValueError(f"unknown fit method {method!r}: choose one of {METHODS}")
    notes: list[str] = []
    spectrum = prepare_spectrum(spectrum, notes)
    material = resolve_material(spectrum, material)
    experiment = resolve_experiment(spectrum, experiment)
    k = material.n_constants
    t = spectrum.temperatures()[0] if temperature is None else float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError("the spectrum has no temperature: give temperature= (K) / --temperature")
    x0, b = resolve_start_and_bounds(start, bounds, material, notes)
    if fit_linewidth:
        g0 = LINEWIDTH_START if linewidth is None else float(linewidth)
        lb = np.asarray(linewidth_bounds, dtype=float)
        g0 = float(np.clip(g0, lb[0], lb[1]))
        x0 = np.append(x0, g0)
        b = np.vstack([b, lb])
        if affine:
            x0, b = np.append(x0, OFFSET_START), np.vstack([b, OFFSET_BOUNDS])
    if simulator is None:
        sim = get_simulator(material, experiment, grid=spectrum.grid, quantity=spectrum.quantity,
                            settings=settings, dtype=FIT_DTYPES[method], device=device)
    else:
        sim = simulator
        if not sim.grid.same_as(spectrum.grid):
            raise ValueError("the given simulator is on another grid than the spectrum")
        if tuple(sim.model.names) != material.names:
            raise ValueError(f"the given simulator models {', '.join(sim.model.names)} but {material.name} has "
                             f"{', '.join(material.names)}: build it for the material (get_simulator(..., material=))")
    if torch.device(sim.device).type != "cpu":
        sim = OnHost(sim)
    prob = FitProblem(sim, spectrum, t, lattice_parameter, b, fit_linewidth, None if fit_linewidth else linewidth,
                      fit_background, background_bounds, names=material.names, linewidth_offset=affine, prior=prior)
    rng = np.random.default_rng(seed)
    u0 = prob.to_u(x0)
    t0 = time.perf_counter()
    if prob.nmse_np(u0) >= UNSTABLE_PENALTY:
        notes.append("the start is dynamically unstable")
    if method == "nelder-mead":
        u, f, conv, msg = fit_nelder_mead(prob, u0, int(max_evaluations or 300 * prob.n_params), rng)
    else:
        u, f, conv, msg = fit_gradient(prob, u0, int(max_evaluations or 200), n_starts, adam_steps, n_polish, rng)
    theta = prob.to_theta(u)
    if f >= UNSTABLE_PENALTY:
        raise ValueError("no dynamically stable force constants were found within the bounds: check the start "
                         "and the bounds")
    at_bounds = parameters_at_bounds(u, prob.parameter_names)
    if at_bounds:
        notes.append("at a bound: " + ", ".join(at_bounds))
    std = np.full(len(theta) + int(fit_background), np.nan)
    corr = std_calibrated = None
    if uncertainty:
        r0, jac, jnote = gauss_newton_jacobian(prob, theta)
        std, corr, _, unote = gauss_newton_std(r0, jac, jnote)
        std_calibrated = calibrated_from_jacobian(prob, r0, jac, jnote, k)[0]
        if unote:
            notes.append(unote)
    background = background_std = None
    with torch.no_grad():
        y = prob.simulate(torch.as_tensor(theta[None], dtype=sim.dtype))[0]
        if fit_background:
            ym = y[prob.mask][None]
            b1 = prob.best_background(ym)
            y = y.clone()
            y[prob.mask] = prob.model(ym, b1)[0]
            background = (0.0, float(b1[0]))
            background_std = (None, float(std[-1]))
            if abs(background[1]) >= (1 - 1e-4) * max(abs(prob.b_bounds[0]), abs(prob.b_bounds[1])):
                notes.append("background slope b1 at its bound")
        y = y.double().numpy()
    seconds = time.perf_counter() - t0
    yv, xv = y[spectrum.grid.mask], np.asarray(spectrum.intensity, float)[spectrum.grid.mask]
    nm = float(((xv - yv) ** 2).sum() / (xv ** 2).sum())
    if not conv:
        notes.append("did not converge within the evaluation budget: returning the best point found")
    offset = float(theta[k + 1]) if affine else None
    if affine:
        notes.append(f"{LINEWIDTH_OFFSET} γ0 = {offset:.3f} ± {std[k + 1]:.3f} meV (HWHM = γ0 + γ·E)")
    message = msg + ("" if not notes else "; " + "; ".join(notes))
    fc = theta[:k].copy()
    lw = float(theta[k]) if fit_linewidth else (None if linewidth is None else float(linewidth))
    simulated = Spectrum(intensity=y, grid=spectrum.grid, temperature=t, quantity=spectrum.quantity,
                         normalization="mean", force_constants=fc, instrument=spectrum.instrument,
                         sample=spectrum.sample, metadata={"fit_method": method, LINEWIDTH: lw,
                                                           LINEWIDTH_OFFSET: offset, "background": background},
                         material=material, experiment=experiment)
    return FitResult(force_constants=fc, std=std[:k].copy(), linewidth=lw, nmse=nm, evaluations=prob.calls,
                     seconds=seconds, converged=conv, message=message, method=method, temperature=float(t),
                     lattice_parameter=lattice_parameter,
                     linewidth_std=float(std[k]) if fit_linewidth else None, spectra_simulated=prob.spectra,
                     start=x0[:k].copy(), correlation=corr, simulated=simulated, background=background,
                     background_std=background_std, background_energy_mean=prob.energy_mean, material=material,
                     experiment=experiment, at_bounds=at_bounds, linewidth_offset=offset,
                     linewidth_offset_std=float(std[k + 1]) if affine else None,
                     prior=None if prior is None else prior.to_dict(), std_calibrated=std_calibrated)
