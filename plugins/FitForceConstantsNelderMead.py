# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.fitting.spectrum_fit.fit_spectrum (docs/mantid.md).
# Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec.
from mantid.api import (AlgorithmFactory, ITableWorkspaceProperty, MatrixWorkspaceProperty, Progress, PropertyMode,
                        PythonAlgorithm)
from mantid.kernel import (Direction, FloatArrayLengthValidator, FloatArrayProperty, FloatBoundedValidator,
                           IntBoundedValidator, Property, StringListValidator)

#: Reference aluminium constants [1XX, 1XY, 1ZZ, 2XX, 2YY], N/m (conventions §1; = phonon_ml_core.physics.units).
AL_REFERENCE_FC = [10.35, 10.38, -2.77, 2.30, -0.25]


def _core():
    try:
        from phonon_ml_core.mantid_support import adapter as mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


class FitForceConstantsNelderMead(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Fits the five force constants to a powder chi''(|Q|,E) workspace by minimising the NMSE against "
                "the powder simulator (Nelder-Mead, or gradient descent through the simulator).")

    def seeAlso(self):
        return ["PredictForceConstants", "SimulatePowderINS", "PreprocessForML", "Fit"]

    def PyInit(self):
        self.declareProperty(MatrixWorkspaceProperty("InputWorkspace", "", direction=Direction.Input),
                             doc="chi''(|Q|,E) or S(|Q|,E) in the SofQW layout (PreprocessForML output recommended)")
        self.declareProperty("Method", "nelder-mead", StringListValidator(["nelder-mead", "gradient"]),
                             doc="bounded Nelder-Mead, or autograd multi-start + L-BFGS-B")
        self.declareProperty(FloatArrayProperty("StartValues", AL_REFERENCE_FC, FloatArrayLengthValidator(5),
                                                direction=Direction.Input),
                             doc="starting [1XX, 1XY, 1ZZ, 2XX, 2YY], N/m (e.g. PredictForceConstants output)")
        self.declareProperty(FloatArrayProperty("LowerBounds", [], FloatArrayLengthValidator(0, 5),
                                                direction=Direction.Input),
                             doc="5 lower bounds, N/m (default: 0.3-2 x reference, 2YY in [-2, 2])")
        self.declareProperty(FloatArrayProperty("UpperBounds", [], FloatArrayLengthValidator(0, 5),
                                                direction=Direction.Input),
                             doc="5 upper bounds, N/m")
        self.declareProperty("FitLinewidth", True, doc="fit the linewidth gamma (HWHM = gamma * E) as a nuisance parameter")
        self.declareProperty("FitBackground", True, doc="fit a residual background slope in energy transfer "
                             "(flat in |Q|) as a nuisance parameter")
        self.declareProperty("Linewidth", 0.0, FloatBoundedValidator(lower=0.0),
                             doc="fixed gamma, or its start when fitted; 0 = none")
        positive = FloatBoundedValidator(lower=0.0, exclusive=True)
        self.declareProperty("Temperature", Property.EMPTY_DBL, positive,
                             doc="K (default: the TemperatureLog sample log or fallbacks)")
        self.declareProperty("TemperatureLog", "SampleTemp", doc="sample log holding the temperature")
        self.declareProperty("Ei", Property.EMPTY_DBL, positive, doc="incident energy, meV (default: the Ei log)")
        self.declareProperty("LatticeParameter", Property.EMPTY_DBL, positive,
                             doc="Angstrom (default: aluminium a(T))")
        self.declareProperty("MaxEvaluations", 0, IntBoundedValidator(lower=0),
                             doc="simulator-call budget (0: 300 per parameter for Nelder-Mead, 120 for gradient)")
        self.declareProperty("Seed", 0, IntBoundedValidator(lower=0), doc="seed of the gradient fit's extra starts")
        self.declareProperty(ITableWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="table: Input, Index, Name, Value, Std, Units, NMSE, Evaluations, Seconds, ...")
        self.declareProperty(MatrixWorkspaceProperty("OutputFittedSpectrum", "", direction=Direction.Output,
                                                     optional=PropertyMode.Optional),
                             doc="the simulated spectrum at the best constants (mean-normalised)")

    def validateInputs(self):
        ma = _core()
        issues = {}
        ws = self.getProperty("InputWorkspace").value
        problem = ma.check_sqw_workspace(ws)
        if problem:
            return {"InputWorkspace": problem}
        if self.getProperty("Temperature").isDefault and \
                ma.sample_temperature(ws, self.getPropertyValue("TemperatureLog"))[1] is None:
            issues["Temperature"] = ("the sample temperature is unknown (no SampleTemp or fallback log): set "
                                     "Temperature (K) or TemperatureLog")
        if self.getProperty("Ei").isDefault and ma.incident_energy(ws)[1] is None:
            issues["Ei"] = ("the workspace has no Ei log: set Ei (meV) or add the log "
                            "(AddSampleLog(LogName='Ei', LogType='Number'))")
        lo, hi = self.getProperty("LowerBounds").value, self.getProperty("UpperBounds").value
        if len(lo) != len(hi) or len(lo) not in (0, 5):
            issues["LowerBounds"] = "give both LowerBounds and UpperBounds with 5 values each, or neither"
        elif len(lo) == 5 and any(a >= b for a, b in zip(lo, hi)):
            issues["UpperBounds"] = "every upper bound must exceed its lower bound"
        return issues

    def PyExec(self):
        ma = _core()
        import numpy as np
        from phonon_ml_core.fitting.spectrum_fit import fit_spectrum

        progress = Progress(self, 0.0, 1.0, 3)
        ws = self.getProperty("InputWorkspace").value
        t = None if self.getProperty("Temperature").isDefault else float(self.getProperty("Temperature").value)
        ei = None if self.getProperty("Ei").isDefault else float(self.getProperty("Ei").value)
        s = ma.workspace_to_spectrum(ws, temperature=t, ei_mev=ei,
                                     temperature_log=self.getPropertyValue("TemperatureLog"))
        lo, hi = self.getProperty("LowerBounds").value, self.getProperty("UpperBounds").value
        bounds = np.stack([lo, hi], 1) if len(lo) == 5 else None
        progress.report("fitting")
        lw = float(self.getProperty("Linewidth").value)
        r = fit_spectrum(s, method=self.getPropertyValue("Method"), start=self.getProperty("StartValues").value,
                         bounds=bounds, fit_linewidth=bool(self.getProperty("FitLinewidth").value),
                         fit_background=bool(self.getProperty("FitBackground").value),
                         linewidth=lw if lw > 0 else None,
                         lattice_parameter=None if self.getProperty("LatticeParameter").isDefault
                         else float(self.getProperty("LatticeParameter").value),
                         seed=int(self.getProperty("Seed").value),
                         max_evaluations=int(self.getProperty("MaxEvaluations").value) or None)
        self.log().notice(f"FitForceConstantsNelderMead: NMSE {r.nmse:.4f}, {r.evaluations} evaluations, "
                          f"{r.seconds:.1f} s; {r.message}")
        progress.report("writing the results")
        entry = {"input": self.getPropertyValue("InputWorkspace"), "index": 0, "force_constants": r.force_constants,
                 "std": r.std, "NMSE": r.nmse, "Evaluations": r.evaluations, "Seconds": r.seconds,
                 "Temperature": r.temperature, "Converged": float(r.converged),
                 "Linewidth": np.nan if r.linewidth is None else r.linewidth}
        table = ma.force_constants_table([entry], ("NMSE", "Evaluations", "Seconds", "Temperature", "Converged",
                                                   "Linewidth"))
        self.setProperty("OutputWorkspace", table)
        if self.getPropertyValue("OutputFittedSpectrum"):
            self.setProperty("OutputFittedSpectrum", ma.spectrum_to_workspace(r.simulated, title="fitted spectrum"))
        progress.report("done")


AlgorithmFactory.subscribe(FitForceConstantsNelderMead)
