# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.fitting.spectrum_fit.fit_spectrum (docs/mantid.md).
# Module level imports Mantid only; defaults come from phonon_ml_core.specs (no torch) in PyInit, the fit (torch) is
# imported in PyExec. A WorkspaceGroup input is processed member by member by Mantid (a group of tables).
from mantid.api import (AlgorithmFactory, CommonBinsValidator, HistogramValidator, ITableWorkspaceProperty,
                        MatrixWorkspaceProperty, Progress, PropertyMode, PythonAlgorithm, WorkspaceUnitValidator)
from mantid.kernel import (CompositeValidator, Direction, FloatArrayProperty, FloatBoundedValidator,
                           IntBoundedValidator, Property, StringListValidator)


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
        return ("Fits the material's force constants to a powder chi''(|Q|,E) workspace by minimising the NMSE against "
                "the powder simulator (Nelder-Mead, or gradient descent through the simulator).")

    def seeAlso(self):
        return ["PredictForceConstants", "SimulatePowderINS", "PreprocessForML", "Fit"]

    def PyInit(self):
        ma = _core()
        sofqw = CompositeValidator()  # the SofQW layout only, as ApplyDetailedBalance/SofQW declare their input
        sofqw.add(WorkspaceUnitValidator("DeltaE"))
        sofqw.add(HistogramValidator())
        sofqw.add(CommonBinsValidator())
        self.declareProperty(MatrixWorkspaceProperty("InputWorkspace", "", direction=Direction.Input, validator=sofqw),
                             doc="chi''(|Q|,E) or S(|Q|,E) in the SofQW layout (PreprocessForML output recommended); a "
                                 "group is fitted member by member")
        self.declareProperty("Material", ma.DEFAULT_MATERIAL,
                             doc="the sample: built-in element symbol or material file (default: the material recorded "
                                 f"on the workspace, else {ma.DEFAULT_MATERIAL}); sets the constants, start and bounds")
        self.declareProperty("Method", "nelder-mead", StringListValidator(["nelder-mead", "gradient"]),
                             doc="bounded Nelder-Mead, or autograd multi-start + L-BFGS-B")
        self.declareProperty(FloatArrayProperty("StartValues", [], direction=Direction.Input),
                             doc="starting constants, N/m, in the material's order (e.g. PredictForceConstants "
                                 "output); empty: the material's reference constants")
        self.declareProperty(FloatArrayProperty("LowerBounds", [], direction=Direction.Input),
                             doc="lower bounds, N/m, one per constant (empty: the material's fit bounds)")
        self.declareProperty(FloatArrayProperty("UpperBounds", [], direction=Direction.Input),
                             doc="upper bounds, N/m, one per constant (empty: the material's fit bounds)")
        self.declareProperty("FitLinewidth", True,
                             doc="fit the linewidth gamma (HWHM = gamma * E) as a nuisance parameter")
        self.declareProperty("FitBackground", True, doc="fit a residual background slope in energy transfer "
                             "(flat in |Q|) as a nuisance parameter")
        self.declareProperty("Linewidth", 0.0, FloatBoundedValidator(lower=0.0),
                             doc="fixed gamma, or its start when fitted; 0 = none")
        positive = FloatBoundedValidator(lower=0.0, exclusive=True)
        self.declareProperty("Temperature", Property.EMPTY_DBL, positive,
                             doc="K (default: the TemperatureLog sample log or fallbacks)")
        self.declareProperty("TemperatureLog", ma.TEMPERATURE_LOGS[0], doc="sample log holding the temperature")
        ma.declare_experiment_properties(
            self, instrument_doc="instrument for the resolution (default: the workspace's instrument or recorded "
                                 f"experiment, else {ma.DEFAULT_INSTRUMENT})",
            chopper_doc="chopper package as resins names it (empty: the recorded one, else the instrument's)",
            frequency_doc="chopper frequency, Hz (default: the recorded one, else the instrument's)")
        self.declareProperty("LatticeParameter", Property.EMPTY_DBL, positive,
                             doc="Angstrom (default: the material's a(T))")
        self.declareProperty("MaxEvaluations", 0, IntBoundedValidator(lower=0),
                             doc="simulator-call budget (0: fit_spectrum's default budget for the method)")
        self.declareProperty("Seed", 0, IntBoundedValidator(lower=0), doc="seed of the gradient fit's extra starts")
        ma.declare_device(self, doc="torch device of the simulator: cpu, or cuda for the GPU (it must exist here)")
        self.declareProperty(ITableWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="table: Input, Index, Name (the material's constants), Value, Std, Units, NMSE, "
                                 "Evaluations, Seconds, Temperature, Converged, Linewidth")
        self.declareProperty(MatrixWorkspaceProperty("OutputFittedSpectrum", "", direction=Direction.Output,
                                                     optional=PropertyMode.Optional),
                             doc="the simulated spectrum at the best constants (mean-normalised)")
        self.declareProperty(ITableWorkspaceProperty("OutputFrequencies", "", direction=Direction.Output,
                                                     optional=PropertyMode.Optional),
                             doc="table of the zone-boundary frequencies of the fitted constants with the fit's "
                                 "covariance propagated: Input, Index, Point, Branch, Frequency, Std, Units (THz; "
                                 "empty: none)")

    def _settings(self):
        return _core().experiment_properties(self)

    def _material(self, ma, ws):
        return ma.material_for(ws, self.getPropertyValue("Material"), not self.getProperty("Material").isDefault)

    def validateInputs(self):
        ma = _core()
        from phonon_ml_core.mantid_support.checks import number_problems

        problems = number_problems(self, finite=("StartValues", "LowerBounds", "UpperBounds"))
        if problems:
            return problems
        ws = self.getProperty("InputWorkspace").value
        problem = ma.check_sqw_workspace(ws)
        if problem:
            return {"InputWorkspace": problem}
        problem = ma.material_problem(self.getPropertyValue("Material"))
        if problem:
            return {"Material": problem}
        material = self._material(ma, ws)
        issues = {}
        problem = ma.device_problem(self.getPropertyValue("Device"))
        if problem:
            issues["Device"] = problem
        if self.getProperty("Temperature").isDefault and \
                ma.sample_temperature(ws, self.getPropertyValue("TemperatureLog"))[1] is None:
            issues["Temperature"] = ("the sample temperature is unknown (no SampleTemp or fallback log): set "
                                     "Temperature (K) or TemperatureLog")
        if self.getProperty("Ei").isDefault and ma.incident_energy(ws)[1] is None:
            issues["Ei"] = ("the workspace has no Ei log: set Ei (meV) or add the log "
                            "(AddSampleLog(LogName='Ei', LogType='Number'))")
        else:
            issues.update(ma.experiment_problems(ws, *self._settings()))
        k, names = material.n_constants, ", ".join(material.names)
        start = self.getProperty("StartValues").value
        if len(start) not in (0, k):
            issues["StartValues"] = f"give {k} values for {material.name} ({names}) or none, got {len(start)}"
        lo, hi = self.getProperty("LowerBounds").value, self.getProperty("UpperBounds").value
        if len(lo) != len(hi) or len(lo) not in (0, k):
            issues["LowerBounds"] = (f"give both LowerBounds and UpperBounds with {k} values each ({names}) for "
                                     f"{material.name}, or neither")
        elif len(lo) == k and any(a >= b for a, b in zip(lo, hi)):
            issues["UpperBounds"] = "every upper bound must exceed its lower bound"
        return issues

    def PyExec(self):
        ma = _core()
        from dataclasses import replace

        import numpy as np

        from phonon_ml_core.fitting.spectrum_fit import fit_spectrum

        progress = Progress(self, 0.0, 1.0, 3)
        ws = self.getProperty("InputWorkspace").value
        material = self._material(ma, ws)
        settings = ma.experiment_settings(ws, *self._settings())
        s = ma.workspace_to_spectrum(ws, temperature=ma.optional(self, "Temperature", float),
                                     ei_mev=settings["ei_mev"], temperature_log=self.getPropertyValue("TemperatureLog"))
        experiment = ma.make_experiment(settings, grid=s.grid)
        s = replace(s, material=material, experiment=experiment)
        start = self.getProperty("StartValues").value
        lo, hi = self.getProperty("LowerBounds").value, self.getProperty("UpperBounds").value
        bounds = np.stack([lo, hi], 1) if len(lo) else np.asarray(material.fit_bounds, dtype=float)
        progress.report("fitting")
        lw = float(self.getProperty("Linewidth").value)
        r = fit_spectrum(s, method=self.getPropertyValue("Method"),
                         start=start if len(start) else np.asarray(material.reference_constants, dtype=float),
                         bounds=bounds, fit_linewidth=bool(self.getProperty("FitLinewidth").value),
                         fit_background=bool(self.getProperty("FitBackground").value),
                         linewidth=lw if lw > 0 else None,
                         lattice_parameter=ma.optional(self, "LatticeParameter", float),
                         seed=int(self.getProperty("Seed").value),
                         max_evaluations=int(self.getProperty("MaxEvaluations").value) or None,
                         device=self.getPropertyValue("Device"))
        self.log().notice(f"FitForceConstantsNelderMead: {material.name}, NMSE {r.nmse:.4f}, {r.evaluations} "
                          f"evaluations, {r.seconds:.1f} s; {r.message}")
        progress.report("writing the results")
        entry = {"input": self.getPropertyValue("InputWorkspace"), "index": 0, "force_constants": r.force_constants,
                 "std": r.std, "NMSE": r.nmse, "Evaluations": r.evaluations, "Seconds": r.seconds,
                 "Temperature": r.temperature, "Converged": float(r.converged),
                 "Linewidth": np.nan if r.linewidth is None else r.linewidth,
                 "StdCalibrated": r.std_calibrated}  # per constant, N/m; None (no estimate): NaN
        table = ma.force_constants_table([entry], ("NMSE", "Evaluations", "Seconds", "Temperature", "Converged",
                                                   "Linewidth", "StdCalibrated"), names=material.names)
        self.setProperty("OutputWorkspace", table)
        if self.getPropertyValue("OutputFrequencies"):
            from phonon_ml_core.fitting.frequencies import frequency_fields
            from phonon_ml_core.mantid_support.tables import frequencies_table

            fields = frequency_fields(material, r.force_constants, covariance=r.covariance)  # as RESULT.json
            self.setProperty("OutputFrequencies", frequencies_table([{**entry, **fields}]))
        if self.getPropertyValue("OutputFittedSpectrum"):
            self.setProperty("OutputFittedSpectrum", ma.spectrum_to_workspace(r.simulated, title="fitted spectrum",
                                                                              material=material))
        progress.report("done")


AlgorithmFactory.subscribe(FitForceConstantsNelderMead)
