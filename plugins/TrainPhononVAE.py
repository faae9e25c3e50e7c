# phonon-ml Mantid algorithm: a thin adapter to the training core that `phonon-ml train` calls
# (phonon_ml_core.learn.training.train_pipeline + phonon_ml_core.learn.bundle.bundle_from_training; docs/mantid.md).
# Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec.
from mantid.api import AlgorithmFactory, FileAction, FileProperty, Progress, PythonAlgorithm, mtd
from mantid.kernel import (Direction, FloatBoundedValidator, IntBoundedValidator, Property, StringArrayProperty,
                           StringListValidator)

#: = phonon_ml_core.learn.networks.FAMILIES (default first).
FAMILIES = ["fcvae", "fcae", "cnnae", "cnnvae"]


def _core():
    try:
        from phonon_ml_core.mantid_support import adapter as mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


def _expand(names):
    """Workspace names with groups replaced by their members."""
    out = []
    for name in names:
        ws = mtd[name]
        if hasattr(ws, "getNames"):
            out.extend(ws.getNames())
        else:
            out.append(name)
    return out


class TrainPhononVAE(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Trains the spectrum autoencoder (VAE) and the force-constant regressor on a simulated data set, "
                "optionally fine-tuned on measured workspaces, and writes a model bundle.")

    def seeAlso(self):
        return ["SimulatePowderINS", "PreprocessForML", "PredictForceConstants", "AdaptPhononModel"]

    def checkGroups(self):
        return False

    def PyInit(self):
        self.declareProperty(FileProperty("SimulatedData", "", FileAction.Load, [".h5", ".hdf5"]),
                             doc="labelled simulated data set (phonon-ml simulate --count N)")
        self.declareProperty(StringArrayProperty("MeasuredWorkspaces", [], direction=Direction.Input),
                             doc="model-ready workspaces (PreprocessForML output) or groups for fine-tuning")
        self.declareProperty("OutputBundle", "", doc="model bundle directory to write")
        self.declareProperty("Overwrite", False, doc="replace an existing bundle")
        self.declareProperty("Family", "fcvae", StringListValidator(FAMILIES), doc="autoencoder family")
        self.declareProperty("LatentDim", 30, IntBoundedValidator(lower=1, upper=1000), doc="latent dimension")
        self.declareProperty("KLWeight", 1e-6, FloatBoundedValidator(lower=0.0), doc="KL weight of the VAEs")
        self.declareProperty("Epochs", 60, IntBoundedValidator(lower=0), doc="maximum pretraining epochs")
        self.declareProperty("FinetuneEpochs", 50, IntBoundedValidator(lower=0), doc="fine-tuning epochs")
        self.declareProperty("ExtendedEpochs", 50, IntBoundedValidator(lower=0), doc="extended-training epochs")
        self.declareProperty("RegressorEpochs", 200, IntBoundedValidator(lower=0), doc="maximum regressor epochs")
        self.declareProperty("Optimizer", "adam", StringListValidator(["adam", "sgd"]),
                             doc="adam (cosine decay, early stopping) or sgd (the study's)")
        self.declareProperty("LearningRate", Property.EMPTY_DBL, FloatBoundedValidator(lower=0.0, exclusive=True),
                             doc="autoencoder learning rate (default per optimiser and family)")
        self.declareProperty("BatchSize", 64, IntBoundedValidator(lower=1), doc="autoencoder batch size")
        self.declareProperty("Patience", 10, IntBoundedValidator(lower=1), doc="early-stopping patience (adam)")
        self.declareProperty("RegressorCodes", "sample", StringListValidator(["sample", "mean"]),
                             doc="train the regressor on sampled latent codes or posterior means")
        self.declareProperty("Seed", 0, IntBoundedValidator(lower=0), doc="random seed")
        _core().declare_device(self, doc="torch device of the autoencoder and regressor stages: cpu, or cuda for the "
                                         "GPU (it must exist)")
        self.declareProperty("BundleDirectory", "", direction=Direction.Output, doc="the bundle written")

    def validateInputs(self):
        ma = _core()
        issues = {}
        overwrite = bool(self.getProperty("Overwrite").value)
        problem = ma.check_output_bundle(self.getPropertyValue("OutputBundle"), overwrite)
        if problem:
            issues["OutputBundle"] = problem
        problem = ma.device_problem(self.getPropertyValue("Device"))
        if problem:
            issues["Device"] = problem
        data = self.getPropertyValue("SimulatedData")
        if data:
            problem = ma.check_training_file(data)
            if problem:
                issues["SimulatedData"] = problem
        for name in self.getProperty("MeasuredWorkspaces").value:
            if name not in mtd:
                issues["MeasuredWorkspaces"] = f"no workspace named {name!r}"
                break
        else:
            for name in _expand(self.getProperty("MeasuredWorkspaces").value):
                problem = ma.check_sqw_workspace(mtd[name])
                if problem:
                    issues["MeasuredWorkspaces"] = f"{name}: {problem}"
                    break
        return issues

    def PyExec(self):
        ma = _core()
        args = {"data": self.getPropertyValue("SimulatedData"), "output": self.getPropertyValue("OutputBundle"),
                "overwrite": bool(self.getProperty("Overwrite").value), "family": self.getPropertyValue("Family"),
                "latent_dim": int(self.getProperty("LatentDim").value),
                "kl_weight": float(self.getProperty("KLWeight").value),
                "epochs": int(self.getProperty("Epochs").value),
                "finetune_epochs": int(self.getProperty("FinetuneEpochs").value),
                "extended_epochs": int(self.getProperty("ExtendedEpochs").value),
                "regressor_epochs": int(self.getProperty("RegressorEpochs").value),
                "optimizer": self.getPropertyValue("Optimizer"),
                "lr": None if self.getProperty("LearningRate").isDefault
                else float(self.getProperty("LearningRate").value),
                "batch_size": int(self.getProperty("BatchSize").value),
                "patience": int(self.getProperty("Patience").value),
                "regressor_codes": self.getPropertyValue("RegressorCodes"), "seed": int(self.getProperty("Seed").value)}
        names = _expand(self.getProperty("MeasuredWorkspaces").value)
        measured = [ma.workspace_to_spectrum(mtd[n]) for n in names]
        n_epochs = args["epochs"] + args["regressor_epochs"] + (
            args["finetune_epochs"] + args["extended_epochs"] if measured else 0)
        progress = Progress(self, 0.0, 1.0, max(n_epochs, 1) + 1)
        bundle = ma.train_bundle(args, measured, measured_names=names,
                                 on_epoch=ma.progress_callback(progress, n_epochs, "training"),
                                 device=self.getPropertyValue("Device"))
        self.log().notice(f"TrainPhononVAE: wrote {bundle}")
        self.setProperty("BundleDirectory", str(bundle))
        progress.report("done")


AlgorithmFactory.subscribe(TrainPhononVAE)
