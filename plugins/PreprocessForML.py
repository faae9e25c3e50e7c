# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.preprocess.pipeline.preprocess_with_report
# (docs/mantid.md). Module level imports Mantid only; defaults come from phonon_ml_core.specs (no torch) in PyInit,
# the preprocessing (torch) is imported in PyExec. A WorkspaceGroup input is processed member by member by Mantid.
from mantid.api import (AlgorithmFactory, CommonBinsValidator, HistogramValidator, MatrixWorkspaceProperty, Progress,
                        PythonAlgorithm)
from mantid.kernel import (CompositeValidator, Direction, FloatBoundedValidator, Property,
                           StringListValidator)

#: = sorted(phonon_ml_core.preprocess.background.ESTIMATORS), default first (a literal: that module imports torch,
#: which must stay out of registration; tests/test_mantid_plugins.py checks it against the core).
BACKGROUNDS = ["minimum", "polynomial", "percentile", "low_region", "none"]


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
                "model grid (a bundle's, or the default grid for the data's Ei and instrument), background-subtracted, "
                "detailed-balance corrected and mean-normalised.")

    def seeAlso(self):
        return ["SofQW", "ApplyDetailedBalance", "PredictForceConstants", "FitForceConstantsNelderMead"]

    def PyInit(self):
        ma = _core()
        # no WorkspaceUnitValidator("DeltaE"): the transposed layout (X = |Q|) is accepted too (checked in
        # validateInputs); both layouts must be histograms with common bins (as SofQW's input and output are)
        data = CompositeValidator()
        data.add(HistogramValidator())
        data.add(CommonBinsValidator())
        self.declareProperty(MatrixWorkspaceProperty("InputWorkspace", "", direction=Direction.Input, validator=data),
                             doc="S(|Q|,E): X = DeltaE bin edges, vertical axis = |Q| (SofQW output), or transposed; "
                                 "a group is processed member by member")
        self.declareProperty("Material", ma.DEFAULT_MATERIAL,
                             doc="the sample: built-in element symbol or material file (default: the material recorded "
                                 f"on the workspace, else {ma.DEFAULT_MATERIAL}); recorded on the output")
        positive = FloatBoundedValidator(lower=0.0, exclusive=True)
        self.declareProperty("Temperature", Property.EMPTY_DBL, positive,
                             doc="sample temperature, K (default: the TemperatureLog sample log)")
        self.declareProperty("TemperatureLog", ma.TEMPERATURE_LOGS[0],
                             doc="sample log holding the temperature (time series are averaged); "
                                 + ", ".join(ma.TEMPERATURE_LOGS[:7]) + "... are tried after it")
        ma.declare_experiment_properties(
            self, instrument_doc="instrument (default: the workspace's instrument or recorded experiment, else "
                                 f"{ma.DEFAULT_INSTRUMENT}); sets the default grid and the 2theta range")
        self.declareProperty("ModelBundle", "",
                             doc="model bundle directory whose grid is the target (default: the default grid for the "
                                 "data's Ei and instrument; ARCS at 50 meV: 70 energies x 101 |Q|)")
        self.declareProperty("Background", BACKGROUNDS[0], StringListValidator(BACKGROUNDS),
                             doc="energy-dependent background estimator")
        self.declareProperty("MinCoverage", 0.0, FloatBoundedValidator(lower=0.0, upper=1.0),
                             doc="mask target bins covered by less than this fraction of their area")
        self.declareProperty(MatrixWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="model-ready chi''(|Q|,E) in the SofQW layout (a distribution), NaN outside the "
                                 "grid's mask")

    def _settings(self):
        return _core().experiment_properties(self)

    def validateInputs(self):
        ma = _core()
        from phonon_ml_core.mantid_support.checks import number_problems

        problems = number_problems(self)
        if problems:
            return problems
        ws = self.getProperty("InputWorkspace").value
        problem = ma.check_sqw_workspace(ws)
        if problem:
            return {"InputWorkspace": problem}
        problem = ma.material_problem(self.getPropertyValue("Material"))
        if problem:
            return {"Material": problem}
        issues = {}
        if self.getProperty("Ei").isDefault and ma.incident_energy(ws)[1] is None:
            issues["Ei"] = ("the workspace has no Ei log: set Ei (meV) or add the log "
                            "(GetEi / AddSampleLog(LogName='Ei', LogType='Number'))")
        else:
            issues.update(ma.experiment_problems(ws, *self._settings()))
        if ma.workspace_quantity(ws) == "S" and self.getProperty("Temperature").isDefault and \
                ma.sample_temperature(ws, self.getPropertyValue("TemperatureLog"))[1] is None:
                issues["Temperature"] = ("the sample temperature is unknown (no SampleTemp or fallback log): set "
                                         "Temperature (K) or TemperatureLog; it is needed to convert S to chi''")
        bundle = self.getPropertyValue("ModelBundle")
        if bundle:
            try:
                desc = ma.bundle_grid_description(bundle)
            except (FileNotFoundError, ValueError) as exc:
                issues["ModelBundle"] = str(exc)
            else:
                material = ma.material_for(ws, self.getPropertyValue("Material"),
                                           not self.getProperty("Material").isDefault)
                mismatch = ma.material_mismatch(desc["material"], material, f"the model bundle {bundle}")
                if mismatch:
                    issues["ModelBundle"] = mismatch
        return issues

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.preprocess.pipeline import preprocess_with_report

        progress = Progress(self, 0.0, 1.0, 3)
        ws = self.getProperty("InputWorkspace").value
        t = _core().optional(self, "Temperature", float)
        settings = ma.experiment_settings(ws, *self._settings())
        material = ma.material_for(ws, self.getPropertyValue("Material"), not self.getProperty("Material").isDefault)
        spectrum = ma.workspace_to_spectrum(ws, temperature=t, ei_mev=settings["ei_mev"],
                                            temperature_log=self.getPropertyValue("TemperatureLog"))
        progress.report("reading the target grid")
        if self.getPropertyValue("ModelBundle"):
            from phonon_ml_core.learn.ensemble import load_model

            grid = load_model(self.getPropertyValue("ModelBundle")).grid
            if abs(settings["ei_mev"] - grid.ei_mev) > 0.01 * grid.ei_mev:
                self.log().warning(f"the data were measured at Ei = {settings['ei_mev']:g} meV but the model grid is "
                                   f"for Ei = {grid.ei_mev:g} meV: the coverage may differ")
            experiment = ma.make_experiment({**settings, "ei_mev": grid.ei_mev}, grid=grid)
        else:
            experiment = ma.make_experiment(settings)
        progress.report("preprocessing")
        out, report = preprocess_with_report(spectrum, experiment.grid, temperature=t,
                                             background=self.getPropertyValue("Background"),
                                             min_coverage=float(self.getProperty("MinCoverage").value))
        self.log().notice(f"PreprocessForML: {report.summary()}; {material.name}; {experiment.describe()}")
        title = f"model-ready chi'' from {self.getPropertyValue('InputWorkspace')}"
        result = ma.spectrum_to_workspace(out, title=title, material=material, experiment=experiment)
        self.setProperty("OutputWorkspace", result)
        progress.report("done")


AlgorithmFactory.subscribe(PreprocessForML)
