# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.preprocess.pipeline.preprocess_with_report (docs/mantid.md).
# Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec.
from mantid.api import AlgorithmFactory, MatrixWorkspaceProperty, Progress, PythonAlgorithm
from mantid.kernel import Direction, FloatBoundedValidator, Property, StringListValidator

#: = sorted(phonon_ml_core.preprocess.background.ESTIMATORS), default first.
BACKGROUNDS = ["minimum", "polynomial", "percentile", "low_region", "none"]  # first = core default


def _core():
    try:
        from phonon_ml_core.mantid_support import adapter as mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


class PreprocessForML(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Turns a measured powder S(|Q|,E) (SofQW output) into model-ready chi''(|Q|,E): rebinned onto the "
                "model grid, background-subtracted, detailed-balance corrected and mean-normalised.")

    def seeAlso(self):
        return ["SofQW", "ApplyDetailedBalance", "PredictForceConstants", "FitForceConstantsNelderMead"]

    def PyInit(self):
        self.declareProperty(MatrixWorkspaceProperty("InputWorkspace", "", direction=Direction.Input),
                             doc="S(|Q|,E): X = DeltaE bin edges, vertical axis = |Q| (SofQW output), or transposed")
        positive = FloatBoundedValidator(lower=0.0, exclusive=True)
        self.declareProperty("Temperature", Property.EMPTY_DBL, positive,
                             doc="sample temperature, K (default: the TemperatureLog sample log)")
        self.declareProperty("TemperatureLog", "SampleTemp",
                             doc="sample log holding the temperature (time series are averaged); SampleTemp, "
                                 "sample_temperature, Temperature, SensorA... are tried after it")
        self.declareProperty("Ei", Property.EMPTY_DBL, positive, doc="incident energy, meV (default: the Ei log)")
        self.declareProperty("ModelBundle", "",
                             doc="model bundle directory whose grid is the target (default: the standard ARCS "
                                 "Ei = 50 meV grid, 70 energies x 101 |Q|)")
        self.declareProperty("Background", "minimum", StringListValidator(BACKGROUNDS),
                             doc="energy-dependent background estimator")
        self.declareProperty("MinCoverage", 0.0, FloatBoundedValidator(lower=0.0, upper=1.0),
                             doc="mask target bins covered by less than this fraction of their area")
        self.declareProperty(MatrixWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="model-ready chi''(|Q|,E) in the SofQW layout, NaN outside the grid's mask")

    def validateInputs(self):
        ma = _core()
        issues = {}
        ws = self.getProperty("InputWorkspace").value
        problem = ma.check_sqw_workspace(ws)
        if problem:
            return {"InputWorkspace": problem}
        if self.getProperty("Ei").isDefault and ma.incident_energy(ws)[1] is None:
            issues["Ei"] = ("the workspace has no Ei log: set Ei (meV) or add the log "
                            "(GetEi / AddSampleLog(LogName='Ei', LogType='Number'))")
        quantity = ma.workspace_quantity(ws)
        if quantity == "S" and self.getProperty("Temperature").isDefault:
            if ma.sample_temperature(ws, self.getPropertyValue("TemperatureLog"))[1] is None:
                issues["Temperature"] = ("the sample temperature is unknown (no SampleTemp or fallback log): set "
                                         "Temperature (K) or TemperatureLog; it is needed to convert S to chi''")
        bundle = self.getPropertyValue("ModelBundle")
        if bundle:
            try:
                ma.bundle_grid_description(bundle)
            except (FileNotFoundError, ValueError) as exc:
                issues["ModelBundle"] = str(exc)
        return issues

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.preprocess.pipeline import preprocess_with_report

        progress = Progress(self, 0.0, 1.0, 3)
        ws = self.getProperty("InputWorkspace").value
        t = None if self.getProperty("Temperature").isDefault else float(self.getProperty("Temperature").value)
        ei = None if self.getProperty("Ei").isDefault else float(self.getProperty("Ei").value)
        spectrum = ma.workspace_to_spectrum(ws, temperature=t, ei_mev=ei,
                                            temperature_log=self.getPropertyValue("TemperatureLog"))
        progress.report("reading the target grid")
        grid = None
        if self.getPropertyValue("ModelBundle"):
            from phonon_ml_core.learn.bundle import load_bundle
            grid = load_bundle(self.getPropertyValue("ModelBundle")).grid
        target_ei = 50.0 if grid is None else grid.ei_mev
        if abs(spectrum.grid.ei_mev - target_ei) > 0.01 * target_ei:
            self.log().warning(f"the data were measured at Ei = {spectrum.grid.ei_mev:g} meV but the target grid is for "
                               f"Ei = {target_ei:g} meV: the coverage may differ")
        progress.report("preprocessing")
        out, report = preprocess_with_report(spectrum, grid, temperature=t,
                                             background=self.getPropertyValue("Background"),
                                             min_coverage=float(self.getProperty("MinCoverage").value))
        self.log().notice(f"PreprocessForML: {report.summary()}")
        result = ma.spectrum_to_workspace(out, title=f"model-ready chi'' from {self.getPropertyValue('InputWorkspace')}")
        self.setProperty("OutputWorkspace", result)
        progress.report("done")


AlgorithmFactory.subscribe(PreprocessForML)
