# phonon-ml Mantid algorithm: a thin adapter to the powder simulator for any material and experiment
# (docs/mantid.md). Module level imports Mantid only; the property defaults come from phonon_ml_core.specs (no
# torch) in PyInit, and the simulator (torch) is imported in PyExec.
from mantid.api import AlgorithmFactory, FileAction, FileProperty, MatrixWorkspaceProperty, Progress, PythonAlgorithm
from mantid.kernel import (Direction, FloatArrayProperty, FloatBoundedValidator, IntBoundedValidator, Property,
                           StringListValidator)


def _core():
    try:
        from phonon_ml_core.mantid_support import adapter as mantid_adapter
    except ImportError as exc:
        raise RuntimeError(f"phonon-ml is not importable in Mantid's Python ({exc}): install it with "
                           "`pip install phonon-ml` in the Mantid environment") from exc
    return mantid_adapter


class SimulatePowderINS(PythonAlgorithm):
    def category(self):
        return "Inelastic\\PhononML"

    def summary(self):
        return ("Simulates the powder INS spectrum chi''(|Q|,E) or S(|Q|,E) of a cubic Born-von Karman model (any "
                "built-in or file material) for a direct-geometry instrument setting, laid out like SofQW output.")

    def seeAlso(self):
        return ["PreprocessForML", "FitForceConstantsNelderMead", "PredictForceConstants", "SofQW"]

    def PyInit(self):
        ma = _core()
        self.declareProperty("Material", ma.DEFAULT_MATERIAL,
                             doc="built-in material by element symbol (phonon-ml materials) or the path of a material "
                                 f"file (.json/.yaml); default {ma.DEFAULT_MATERIAL}")
        self.declareProperty(FloatArrayProperty("ForceConstants", [], direction=Direction.Input),
                             doc="force constants in N/m, in the material's order (fcc: 1XX, 1XY, 1ZZ, 2XX, 2YY; bcc: "
                                 "1XX, 1XY, 2XX, 2YY); empty: the material's reference constants")
        self.declareProperty(FileProperty("PhonopyFile", "", FileAction.OptionalLoad, [".yaml", ".yml"]),
                             doc="phonopy yaml with force constants of an fcc crystal, projected onto the two-shell "
                                 "constants (replaces ForceConstants)")
        positive = FloatBoundedValidator(lower=0.0, exclusive=True)
        self.declareProperty("Temperature", 300.0, positive, doc="sample temperature, K")
        self.declareProperty("LatticeParameter", Property.EMPTY_DBL, positive,
                             doc="lattice parameter, Angstrom (default: the material's a(T))")
        ma.declare_experiment_properties(
            self, instrument_default=ma.DEFAULT_INSTRUMENT,
            instrument_doc="direct-geometry instrument (resolution via resins, detector 2theta range for the mask)",
            ei_doc="incident energy, meV (default: the instrument's standard Ei; ARCS 50 meV gives the standard grid)")
        self.declareProperty("Quantity", "chi''", StringListValidator(["chi''", "S"]),
                             doc="dynamical susceptibility chi'' or scattering function S")
        self.declareProperty("Normalize", True, doc="mean-normalise on the valid pixels")
        self.declareProperty("Multiphonon", True, doc="include multiphonon scattering (incoherent approximation)")
        self.declareProperty("Linewidth", 0.0, FloatBoundedValidator(lower=0.0),
                             doc="intrinsic linewidth gamma (HWHM = gamma * E); 0 = none")
        self.declareProperty("MeshDensity", 16, IntBoundedValidator(lower=2, upper=64),
                             doc="reciprocal-space points per 2pi/a (accuracy against speed)")
        ma.declare_device(self, doc="torch device of the simulation: cpu, or cuda for the GPU (it must exist here)")
        self.declareProperty(MatrixWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="S(|Q|,E)-layout workspace: DeltaE X bin edges, |Q| bin-edge vertical axis")

    def _settings(self):
        return _core().experiment_properties(self)

    def validateInputs(self):
        ma = _core()
        from phonon_ml_core.mantid_support.checks import number_problems

        problems = number_problems(self, finite=("ForceConstants",))
        if problems:
            return problems
        problem = ma.material_problem(self.getPropertyValue("Material"))
        if problem:
            return {"Material": problem}
        material = ma.resolve_material(self.getPropertyValue("Material"))
        issues = ma.experiment_problems(None, *self._settings())
        device = ma.device_problem(self.getPropertyValue("Device"))
        if device:
            issues["Device"] = device
        fc = self.getProperty("ForceConstants").value
        phonopy = self.getPropertyValue("PhonopyFile")
        if phonopy and len(fc):
            issues["PhonopyFile"] = "give either ForceConstants or PhonopyFile, not both"
        elif phonopy and (material.lattice, material.n_shells) != ("fcc", 2):
            issues["PhonopyFile"] = (f"phonopy files are projected onto fcc two-shell constants, but {material.name} "
                                     f"is {material.lattice} with {material.n_shells} shells: give ForceConstants")
        elif len(fc) and len(fc) != material.n_constants:
            issues["ForceConstants"] = (f"{material.name} has {material.n_constants} constants "
                                        f"({', '.join(material.names)}), got {len(fc)} values")
        return issues

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.mantid_support.simulation import simulate_for

        progress = Progress(self, 0.0, 1.0, 3)
        material = ma.resolve_material(self.getPropertyValue("Material"))
        experiment = ma.make_experiment(ma.experiment_settings(None, *self._settings()))
        fc = self.getProperty("ForceConstants").value
        source = "ForceConstants" if len(fc) else f"the {material.name} reference ({material.reference_source})"
        if not len(fc):
            fc = material.reference_constants
        if self.getPropertyValue("PhonopyFile"):
            fc, info = ma.force_constants_from_phonopy(self.getPropertyValue("PhonopyFile"))
            source = f"phonopy ({info['source']}; projection residual {info['residual']:.2g})"
            self.log().information(f"phonopy constants projected: {list(fc)} N/m, {info}")
        progress.report("building the simulator")
        settings = {"quantity": self.getPropertyValue("Quantity"),
                    "normalize": bool(self.getProperty("Normalize").value),
                    "multiphonon": bool(self.getProperty("Multiphonon").value),
                    "mesh_density": int(self.getProperty("MeshDensity").value)}
        lw = float(self.getProperty("Linewidth").value) or None
        spectrum = simulate_for(material, experiment, fc, float(self.getProperty("Temperature").value), settings,
                                lattice_parameter=_core().optional(self, "LatticeParameter", float), linewidth=lw,
                                device=self.getPropertyValue("Device"))
        progress.report("writing the workspace")
        ws = ma.spectrum_to_workspace(spectrum, title=f"simulated {spectrum.quantity} of {material.name}, constants "
                                                      f"from {source}")
        ws.getRun().addProperty("LatticeParameter", float(spectrum.metadata["lattice_parameter"]), "Angstrom", True)
        self.setProperty("OutputWorkspace", ws)
        progress.report("done")


AlgorithmFactory.subscribe(SimulatePowderINS)
