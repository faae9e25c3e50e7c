# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.learn.adaptation.adapt_to_file, what `phonon-ml finetune`
# runs (docs/mantid.md). Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec.
from mantid.api import AlgorithmFactory, Progress, PythonAlgorithm, WorkspaceProperty
from mantid.kernel import Direction, FloatBoundedValidator, IntBoundedValidator, Property, StringListValidator


#: = phonon_ml_core.learn.defaults.TRAINABLE_LAYERS (default first); checked by tests/test_mantid_plugins.py.
LAYERS = ["last", "all", "bias"]


def _core():
    try:
        from phonon_ml_core.mantid_support import adapter as mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


class AdaptPhononModel(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Adapts a model bundle to measured chi''(|Q|,E) workspaces: its regressor is trained through the "
                "phonon simulator so that the spectra simulated from its predictions match them; writes a new bundle.")

    def seeAlso(self):
        return ["PredictForceConstants", "PreprocessForML", "TrainPhononVAE", "FitForceConstantsNelderMead"]

    def checkGroups(self):
        return False  # a group is the set of spectra the bundle is adapted to

    def PyInit(self):
        self.declareProperty(WorkspaceProperty("InputWorkspace", "", direction=Direction.Input),
                             doc="model-ready chi''(|Q|,E) (PreprocessForML output) or a group of them, with "
                                 "temperatures")
        self.declareProperty("ModelBundle", "",
                             doc="model bundle or ensemble to adapt (default: the bundle shipped in models/)")
        self.declareProperty("OutputBundle", "", doc="the adapted model bundle directory to write")
        self.declareProperty("Overwrite", False, doc="replace an existing bundle")
        self.declareProperty("Steps", 100, IntBoundedValidator(lower=1), doc="Adam steps")
        self.declareProperty("LearningRate", 3e-4, FloatBoundedValidator(lower=0.0, exclusive=True),
                             doc="Adam learning rate")
        self.declareProperty("Layers", "last", StringListValidator(LAYERS),
                             doc="regressor layers to train (last: the output layer only, generalises best; "
                                 "bias: its bias only, a constant offset that keeps the trend in temperature)")
        self.declareProperty("ProfileBackground", True,
                             doc="compare with the best residual background slope added, as the fits do")
        self.declareProperty("WeightsDtype", "float32", StringListValidator(["float32", "float16"]),
                             doc="storage precision of the adapted network weights")
        self.declareProperty("Seed", 0, IntBoundedValidator(lower=0), doc="random seed")
        self.declareProperty("Temperature", Property.EMPTY_DBL, FloatBoundedValidator(lower=0.0, exclusive=True),
                             doc="K, for every input: it overrides the logs of all members of a group (default: each "
                                 "workspace's TemperatureLog)")
        self.declareProperty("TemperatureLog", _core().TEMPERATURE_LOGS[0], doc="sample log holding the temperature")
        self.declareProperty("BundleDirectory", "", direction=Direction.Output, doc="the bundle written")

    def validateInputs(self):
        ma = _core()
        from phonon_ml_core.mantid_support.checks import number_problems

        issues = number_problems(self)
        overwrite = bool(self.getProperty("Overwrite").value)
        problem = ma.check_output_bundle(self.getPropertyValue("OutputBundle"), overwrite)
        if problem:
            issues["OutputBundle"] = problem
        members = ma.group_members(self.getProperty("InputWorkspace").value)
        bundle = ma.bundle_path_or_default(self.getPropertyValue("ModelBundle"))
        issues.update(ma.check_members_for_bundle(members, bundle))
        if not members:
            return issues
        if bundle is not None and "ModelBundle" not in issues:
            try:
                expected = ma.bundle_grid_description(bundle)["material"]
            except (OSError, ValueError):
                expected = None
            for name, member in members:
                got = ma.workspace_material(member)
                problem = None if expected is None or got is None else \
                    ma.material_mismatch(expected, got, f"the model bundle {bundle}")
                if problem:
                    issues["InputWorkspace"] = (f"{name}: " if name else "") + problem
                    break
        missing = ma.member_without_temperature(members, self.getPropertyValue("TemperatureLog"))
        if self.getProperty("Temperature").isDefault and missing is not None:
            issues["Temperature"] = (f"{missing} has no sample temperature log: the adaptation simulates at each "
                                     "spectrum's temperature; set Temperature (K)")
        return issues

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.learn.adaptation import adapt_to_file
        from phonon_ml_core.learn.ensemble import load_model
        from phonon_ml_core.data.spectrum import Spectrum

        members = ma.group_members(self.getProperty("InputWorkspace").value)
        steps = int(self.getProperty("Steps").value)
        progress = Progress(self, 0.0, 1.0, steps + 2)
        progress.report("loading the model bundle")
        bundle = load_model(ma.bundle_path_or_default(self.getPropertyValue("ModelBundle")))
        t = None if self.getProperty("Temperature").isDefault else float(self.getProperty("Temperature").value)
        input_name = self.getPropertyValue("InputWorkspace")
        spectra = [ma.on_grid(ma.workspace_to_spectrum(member, temperature=t,
                                                       temperature_log=self.getPropertyValue("TemperatureLog")),
                              bundle.grid) for _, member in members]
        out = self.getPropertyValue("OutputBundle")
        adapted = adapt_to_file(bundle, Spectrum.stack(spectra), out,
                                overwrite=bool(self.getProperty("Overwrite").value),
                                weights_dtype=self.getPropertyValue("WeightsDtype"), steps=steps,
                                lr=float(self.getProperty("LearningRate").value),
                                seed=int(self.getProperty("Seed").value),
                                trainable=self.getPropertyValue("Layers"),
                                background=bool(self.getProperty("ProfileBackground").value), progress=False,
                                sources=[name or input_name for name, _ in members],
                                on_epoch=ma.progress_callback(progress, steps, "adapting"))
        a = adapted.metadata["adaptation"][-1]
        self.log().notice(f"AdaptPhononModel: simulator-consistency loss (mean NMSE) {a['loss_first']:.4f} -> "
                          f"{a['loss_last']:.4f} on {a['n_spectra']} spectra; wrote {out}")
        self.setProperty("BundleDirectory", out)
        progress.report("done")


AlgorithmFactory.subscribe(AdaptPhononModel)
