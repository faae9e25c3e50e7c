# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.bundle (load_bundle, Bundle.predict) and the
# simulator for the NMSE (docs/mantid.md). Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec.
from mantid.api import (AlgorithmFactory, ITableWorkspaceProperty, MatrixWorkspaceProperty, Progress, PropertyMode,
                        PythonAlgorithm, WorkspaceProperty)
from mantid.kernel import Direction, FloatBoundedValidator, IntBoundedValidator, Property


def _core():
    try:
        from phonon_ml_core import mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


def _members(ws):
    """[(name, workspace)] of a group's members, or [(None, ws)] for a single workspace."""
    if hasattr(ws, "getNames"):
        return [(name, ws.getItem(i)) for i, name in enumerate(ws.getNames())]
    return [(None, ws)]


class PredictForceConstants(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Predicts the five force constants (with uncertainties) of model-ready chi''(|Q|,E) workspaces with "
                "a trained autoencoder + regressor bundle.")

    def seeAlso(self):
        return ["PreprocessForML", "FitForceConstantsNelderMead", "TrainPhononVAE", "SimulatePowderINS"]

    def checkGroups(self):
        return False  # a group is handled here: one table with a block of rows per member

    def PyInit(self):
        self.declareProperty(WorkspaceProperty("InputWorkspace", "", direction=Direction.Input),
                             doc="model-ready chi''(|Q|,E) (PreprocessForML output) or a group of them")
        self.declareProperty("ModelBundle", "", doc="model bundle directory (default: the bundle shipped in models/)")
        self.declareProperty("NumberOfSamples", 10000, IntBoundedValidator(lower=1),
                             doc="latent draws per spectrum for the mean and standard deviation")
        self.declareProperty("Seed", 0, IntBoundedValidator(lower=0), doc="seed of the latent draws")
        self.declareProperty("ComputeNMSE", True,
                             doc="simulate the spectrum of the predicted constants and compute its NMSE")
        self.declareProperty("Temperature", Property.EMPTY_DBL, FloatBoundedValidator(lower=0.0, exclusive=True),
                             doc="K, for the NMSE simulation (default: the SampleTemp log or fallbacks)")
        self.declareProperty("TemperatureLog", "SampleTemp", doc="sample log holding the temperature")
        self.declareProperty(ITableWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="table: Input, Index, Name, Value, Std, Units, NMSE, Temperature per constant")
        self.declareProperty(MatrixWorkspaceProperty("OutputReconstruction", "", direction=Direction.Output,
                                                     optional=PropertyMode.Optional),
                             doc="the spectrum simulated from the predicted constants (single input only)")

    def _bundle_path(self, ma):
        path = self.getPropertyValue("ModelBundle")
        if path:
            return path
        found = ma.default_bundle_path()
        return None if found is None else str(found)

    def validateInputs(self):
        ma = _core()
        issues = {}
        ws = self.getProperty("InputWorkspace").value
        members = _members(ws)
        if not members:
            return {"InputWorkspace": "the group is empty"}
        bundle = self._bundle_path(ma)
        if bundle is None:
            issues["ModelBundle"] = "no model bundle given and none is shipped in models/: set ModelBundle"
        for name, member in members:
            label = f"{name}: " if name else ""
            problem = ma.check_sqw_workspace(member)
            if problem is None and bundle is not None:
                problem = ma.check_grid_matches_bundle(member, bundle)
                if problem and ("does not exist" in problem or "not a phonon-ml" in problem or "unreadable" in problem):
                    issues["ModelBundle"] = problem
                    problem = None
            if problem:
                issues["InputWorkspace"] = label + problem
                break
        if self.getPropertyValue("OutputReconstruction") and len(members) != 1:
            issues["OutputReconstruction"] = "a reconstruction is written for a single input workspace only"
        conditioned = False
        if bundle is not None and "ModelBundle" not in issues:
            try:
                conditioned = ma.bundle_grid_description(bundle)["requires_temperature"]
            except (OSError, ValueError):
                conditioned = False
        if (conditioned or self.getProperty("ComputeNMSE").value) and self.getProperty("Temperature").isDefault:
            for name, member in members:
                if ma.sample_temperature(member, self.getPropertyValue("TemperatureLog"))[1] is None:
                    need = ("this model bundle takes the sample temperature as an input" if conditioned else
                            "it is needed to simulate for the NMSE")
                    issues["Temperature"] = (f"{name or 'the workspace'} has no sample temperature log and {need}: "
                                             "set Temperature (K)" + ("" if conditioned else " or ComputeNMSE=False"))
                    break
        return issues

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.bundle import load_bundle

        ws = self.getProperty("InputWorkspace").value
        members = _members(ws)
        progress = Progress(self, 0.0, 1.0, len(members) + 2)
        progress.report("loading the model bundle")
        bundle = load_bundle(self._bundle_path(ma))
        t = None if self.getProperty("Temperature").isDefault else float(self.getProperty("Temperature").value)
        entries, recs = [], []
        input_name = self.getPropertyValue("InputWorkspace")
        for i, (name, member) in enumerate(members):
            s = ma.on_grid(ma.workspace_to_spectrum(member, temperature=t,
                                                    temperature_log=self.getPropertyValue("TemperatureLog")),
                           bundle.grid)
            (entry,) = ma.predict_spectra(bundle, [s], n_samples=int(self.getProperty("NumberOfSamples").value),
                                          seed=int(self.getProperty("Seed").value),
                                          simulate=bool(self.getProperty("ComputeNMSE").value))
            lw = entry.get("linewidth")
            entry.update({"input": name or input_name, "index": i, "NMSE": entry["nmse"],
                          "Temperature": entry["temperature"], "Linewidth": float("nan") if lw is None else lw})
            entries.append(entry)
            recs.append(entry["reconstruction"])
            progress.report(f"predicted {name or input_name}")
        self.setProperty("OutputWorkspace", ma.force_constants_table(entries, ("NMSE", "Temperature", "Linewidth")))
        if self.getPropertyValue("OutputReconstruction"):
            if recs[0] is None:
                raise RuntimeError("no reconstruction: ComputeNMSE is off or the temperature is unknown")
            self.setProperty("OutputReconstruction",
                             ma.spectrum_to_workspace(recs[0], title="simulated from the predicted constants"))
        progress.report("done")


AlgorithmFactory.subscribe(PredictForceConstants)
