# phonon-ml Mantid algorithm: a thin adapter to phonon_ml_core.simulator.simulate_spectrum (docs/mantid.md).
# Heavy imports (torch, phonon_ml_core) happen inside validateInputs/PyExec so that a missing dependency
# cannot make Mantid drop the plugin silently at load time.
from mantid.api import AlgorithmFactory, FileAction, FileProperty, MatrixWorkspaceProperty, Progress, PythonAlgorithm
from mantid.kernel import (Direction, FloatArrayLengthValidator, FloatArrayProperty, FloatBoundedValidator,
                           IntBoundedValidator, Property, StringListValidator)

#: Reference aluminium constants [1XX, 1XY, 1ZZ, 2XX, 2YY], N/m (conventions §1; = phonon_ml_core.physics.units).
AL_REFERENCE_FC = [10.35, 10.38, -2.77, 2.30, -0.25]
ARCS_CHOPPERS = ["ARCS-100-1.5-AST", "ARCS-700-1.5-AST", "ARCS-700-0.5-AST", "ARCS-100-1.5-SMI", "ARCS-700-1.5-SMI"]


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
        return ("Simulates the powder INS spectrum chi''(|Q|,E) or S(|Q|,E) of an fcc Born-von Karman model "
                "(five force constants or a phonopy file) on the ARCS grid, laid out like SofQW output.")

    def seeAlso(self):
        return ["PreprocessForML", "FitForceConstantsNelderMead", "PredictForceConstants", "SofQW"]

    def PyInit(self):
        self.declareProperty(FloatArrayProperty("ForceConstants", AL_REFERENCE_FC, FloatArrayLengthValidator(5),
                                                direction=Direction.Input),
                             doc="[1XX, 1XY, 1ZZ, 2XX, 2YY] in N/m (default: aluminium reference)")
        self.declareProperty(FileProperty("PhonopyFile", "", FileAction.OptionalLoad, [".yaml", ".yml"]),
                             doc="phonopy yaml with force constants; projected onto the five constants "
                                 "(replaces ForceConstants)")
        positive = FloatBoundedValidator(lower=0.0, exclusive=True)
        self.declareProperty("Temperature", 300.0, positive, doc="sample temperature, K")
        self.declareProperty("LatticeParameter", Property.EMPTY_DBL, positive,
                             doc="lattice parameter, Angstrom (default: aluminium a(T))")
        self.declareProperty("Ei", 50.0, positive, doc="incident energy, meV (50: the standard ARCS grid)")
        self.declareProperty("ChopperPackage", "ARCS-100-1.5-AST", StringListValidator(ARCS_CHOPPERS),
                             doc="ARCS Fermi chopper package (resolution via resins)")
        self.declareProperty("ChopperFrequency", 300, IntBoundedValidator(lower=60, upper=600),
                             doc="Fermi chopper frequency, Hz")
        self.declareProperty("Quantity", "chi''", StringListValidator(["chi''", "S"]),
                             doc="dynamical susceptibility chi'' or scattering function S")
        self.declareProperty("Normalize", True, doc="mean-normalise on the valid pixels")
        self.declareProperty("Multiphonon", True, doc="include multiphonon scattering (incoherent approximation)")
        self.declareProperty("Linewidth", 0.0, FloatBoundedValidator(lower=0.0),
                             doc="intrinsic linewidth gamma (HWHM = gamma * E); 0 = none")
        self.declareProperty("MeshDensity", 16, IntBoundedValidator(lower=2, upper=64),
                             doc="reciprocal-space points per 2pi/a (accuracy against speed)")
        self.declareProperty(MatrixWorkspaceProperty("OutputWorkspace", "", direction=Direction.Output),
                             doc="S(|Q|,E)-layout workspace: DeltaE X bin edges, |Q| bin-edge vertical axis")

    def validateInputs(self):
        issues = {}
        fc_default = self.getProperty("ForceConstants").isDefault
        if self.getPropertyValue("PhonopyFile") and not fc_default:
            issues["PhonopyFile"] = "give either ForceConstants or PhonopyFile, not both"
        ei = self.getProperty("Ei").value
        if ei <= 10.0:
            issues["Ei"] = f"Ei = {ei} meV is below the grid's energy transfers (10-45 meV): raise Ei"
        return issues

    def PyExec(self):
        ma = _core()
        from phonon_ml_core.data.grid import Grid, standard_grid
        from phonon_ml_core.simulator import SimulationSettings, simulate_spectrum

        progress = Progress(self, 0.0, 1.0, 3)
        fc = self.getProperty("ForceConstants").value
        source = "ForceConstants"
        if self.getPropertyValue("PhonopyFile"):
            fc, info = ma.force_constants_from_phonopy(self.getPropertyValue("PhonopyFile"))
            source = f"phonopy ({info['source']}; projection residual {info['residual']:.2g})"
            self.log().information(f"phonopy constants projected: {list(fc)} N/m, {info}")
        progress.report("building the simulator")
        ei = float(self.getProperty("Ei").value)
        std = standard_grid()
        grid = std if ei == std.ei_mev else Grid.from_axes(std.q, std.energy, ei_mev=ei)
        settings = SimulationSettings(quantity=self.getPropertyValue("Quantity"),
                                      normalize=bool(self.getProperty("Normalize").value),
                                      multiphonon=bool(self.getProperty("Multiphonon").value),
                                      chopper_package=self.getPropertyValue("ChopperPackage"),
                                      chopper_frequency=int(self.getProperty("ChopperFrequency").value),
                                      mesh_density=int(self.getProperty("MeshDensity").value))
        a = None if self.getProperty("LatticeParameter").isDefault else float(self.getProperty("LatticeParameter").value)
        lw = float(self.getProperty("Linewidth").value) or None
        spectrum = simulate_spectrum(fc, float(self.getProperty("Temperature").value), grid=grid, settings=settings,
                                     lattice_parameter=a, linewidth=lw)
        progress.report("writing the workspace")
        ws = ma.spectrum_to_workspace(spectrum, title=f"simulated {spectrum.quantity}, constants from {source}")
        ws.getRun().addProperty("LatticeParameter", float(spectrum.metadata["lattice_parameter"]), "Angstrom", True)
        self.setProperty("OutputWorkspace", ws)
        progress.report("done")


AlgorithmFactory.subscribe(SimulatePowderINS)
