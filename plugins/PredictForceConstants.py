# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.learn.ensemble.load_model (bundle or ensemble) and the
# simulator for the NMSE (docs/mantid.md). Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec.
from mantid.api import (AlgorithmFactory, ITableWorkspaceProperty, MatrixWorkspaceProperty, Progress, PropertyMode,
                        PythonAlgorithm, WorkspaceProperty)
from mantid.kernel import Direction, FloatBoundedValidator, IntBoundedValidator, Property


def _core():
    try:
        from phonon_ml_core.mantid_support import adapter as mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


class PredictForceConstants(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Predicts the five force constants (with uncertainties) of model-ready chi''(|Q|,E) workspaces with "
                "a trained autoencoder + regressor bundle.")

    def seeAlso(self):
        return ["PreprocessForML", "FitForceConstantsNelderMead", "TrainPhononVAE", "AdaptPhononModel",
                "SimulatePowderINS"]

    def checkGroups(self):
        return False  # a group is handled here: one table with a block of rows per member

    def PyInit(self):
        ma = _core()
        self.declareProperty(WorkspaceProperty("InputWorkspace", "", direction=Direction.Input),
                             doc="model-ready chi''(|Q|,E) (PreprocessForML output) or a group of them")
        self.declareProperty("ModelBundle", "",
                             doc="model bundle or ensemble directory (default: the bundle shipped in models/)")
        self.declareProperty("Material", "",
                             doc="the sample: built-in element symbol or material file, checked against the bundle's "
                                 "(default: the material recorded on each workspace; none recorded: the bundle's)")
        self.declareProperty("NumberOfSamples", 10000, IntBoundedValidator(lower=1),
                             doc="latent draws per spectrum for the mean and standard deviation")
        self.declareProperty("Seed", 0, IntBoundedValidator(lower=0), doc="seed of the latent draws")
        self.declareProperty("ComputeNMSE", True,
                             doc="simulate the spectrum of the predicted constants and compute its NMSE")
        self.declareProperty("Temperature", Property.EMPTY_DBL, FloatBoundedValidator(lower=0.0, exclusive=True),
                             doc="K, for the NMSE simulation and for temperature-conditioned bundles (default: the "
                                 "TemperatureLog log or fallbacks)")
        self.declareProperty("TemperatureLog", ma.TEMPERATURE_LOGS[0], doc="sample log holding the temperature")
        ma.declare_device(self, doc="torch device of the NMSE simulation: cpu, or cuda for the GPU (it must exist "
                                    "here)")
        self.declareProperty(ITableWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="table: Input, Index, Name (the bundle material's constants), Value, Std, Units, "
                                 "NMSE, NMSEBackgroundSlope, Temperature, Linewidth per constant")
        self.declareProperty(MatrixWorkspaceProperty("OutputReconstruction", "", direction=Direction.Output,
                                                     optional=PropertyMode.Optional),
                             doc="the spectrum simulated from the predicted constants (single input only)")
        self.declareProperty(ITableWorkspaceProperty("OutputFrequencies", "", direction=Direction.Output,
                                                     optional=PropertyMode.Optional),
                             doc="table of the zone-boundary frequencies of the predicted constants: Input, Index, "
                                 "Point, Branch, Frequency, Std, Units (THz; empty: none)")

    def validateInputs(self):
        ma = _core()
        from phonon_ml_core.mantid_support.checks import number_problems

        issues = number_problems(self)
        ws = self.getProperty("InputWorkspace").value
        members = ma.group_members(ws)
        bundle = ma.bundle_path_or_default(self.getPropertyValue("ModelBundle"))
        issues.update(ma.check_members_for_bundle(members, bundle))
        problem = ma.device_problem(self.getPropertyValue("Device"))
        if problem:
            issues["Device"] = problem
        if not members:
            return issues
        if self.getPropertyValue("Material"):
            problem = ma.material_problem(self.getPropertyValue("Material"))
            if problem:
                issues["Material"] = problem
        if bundle is not None and "ModelBundle" not in issues and "Material" not in issues:
            mismatch = self._material_mismatch(ma, members, bundle)
            if mismatch:
                issues["Material"] = mismatch
        if self.getPropertyValue("OutputReconstruction") and len(members) != 1:
            issues["OutputReconstruction"] = "a reconstruction is written for a single input workspace only"
        conditioned = False
        if bundle is not None and "ModelBundle" not in issues:
            try:
                conditioned = ma.bundle_grid_description(bundle)["requires_temperature"]
            except (OSError, ValueError):
                conditioned = False
        missing = ma.member_without_temperature(members, self.getPropertyValue("TemperatureLog"))
        if (conditioned or self.getProperty("ComputeNMSE").value) and self.getProperty("Temperature").isDefault \
                and missing is not None:
            need = ("this model bundle takes the sample temperature as an input" if conditioned else
                    "it is needed to simulate for the NMSE")
            issues["Temperature"] = (f"{missing} has no sample temperature log and {need}: set Temperature (K)"
                                     + ("" if conditioned else " or ComputeNMSE=False"))
        return issues

    def _material_mismatch(self, ma, members, bundle):
        """The first disagreement between the inputs' materials and the bundle's, or None."""
        try:
            expected = ma.bundle_grid_description(bundle)["material"]
        except (OSError, ValueError):
            return None
        text = self.getPropertyValue("Material")
        for name, member in members:
            got = ma.resolve_material(text) if text else ma.workspace_material(member)
            if got is not None:
                problem = ma.material_mismatch(expected, got, f"the model bundle {bundle}")
                if problem:
                    return (f"{name}: " if name else "") + problem
        return None

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.learn.ensemble import load_model

        ws = self.getProperty("InputWorkspace").value
        members = ma.group_members(ws)
        progress = Progress(self, 0.0, 1.0, len(members) + 2)
        progress.report("loading the model bundle")
        path = ma.bundle_path_or_default(self.getPropertyValue("ModelBundle"))
        bundle = load_model(path)
        material = ma.bundle_grid_description(path)["material"]
        t = None if self.getProperty("Temperature").isDefault else float(self.getProperty("Temperature").value)
        entries, recs = [], []
        input_name = self.getPropertyValue("InputWorkspace")
        for i, (name, member) in enumerate(members):
            s = ma.on_grid(ma.workspace_to_spectrum(member, temperature=t,
                                                    temperature_log=self.getPropertyValue("TemperatureLog")),
                           bundle.grid)
            (entry,) = ma.predict_spectra(bundle, [s], n_samples=int(self.getProperty("NumberOfSamples").value),
                                          seed=int(self.getProperty("Seed").value),
                                          simulate=bool(self.getProperty("ComputeNMSE").value),
                                          device=self.getPropertyValue("Device"))
            lw = entry.get("linewidth")
            entry.update({"input": name or input_name, "index": i, "NMSE": entry["nmse"],
                          "NMSEBackgroundSlope": entry["nmse_background_slope"],
                          "Temperature": entry["temperature"], "Linewidth": float("nan") if lw is None else lw})
            entries.append(entry)
            recs.append(entry["reconstruction"])
            progress.report(f"predicted {name or input_name}")
        self.setProperty("OutputWorkspace", ma.force_constants_table(
            entries, ("NMSE", "NMSEBackgroundSlope", "Temperature", "Linewidth"), names=material.names))
        if self.getPropertyValue("OutputFrequencies"):
            from phonon_ml_core.mantid_support.tables import frequencies_table

            self.setProperty("OutputFrequencies", frequencies_table(entries))
        if self.getPropertyValue("OutputReconstruction"):
            if recs[0] is None:
                raise RuntimeError("no reconstruction: ComputeNMSE is off or the temperature is unknown")
            self.setProperty("OutputReconstruction",
                             ma.spectrum_to_workspace(recs[0], title="simulated from the predicted constants",
                                                      material=material))
        progress.report("done")


AlgorithmFactory.subscribe(PredictForceConstants)
