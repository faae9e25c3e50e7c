#!/usr/bin/env python
"""SNS autoreduction for ARCS powder phonon runs (Ei = 50 meV aluminium set-up): force constants per run.

Usage (as the SNS autoreduction framework calls reduce_<INSTRUMENT>.py): python autoreduce_arcs_phonon.py
<event nexus file> <output directory>. Steps: DgsReduction → SofQW (NormalisedPolygon) → PreprocessForML →
PredictForceConstants → save S(|Q|,E), the model-ready χ'' and the constants (NeXus, CSV, JSON).
"""
import json
import os
import sys

import numpy as np

import phonon_ml_core.mantid_plugins  # noqa: F401  registers the phonon-ml algorithms (no-op if already loaded)
from mantid.simpleapi import (DgsReduction, PredictForceConstants, PreprocessForML, SaveNexusProcessed, SofQW,
                              mtd)

EI = 50.0                       # meV, the standard ARCS set-up of the models
Q_BINNING = [0.0, 0.05, 10.5]   # 1/Angstrom; PreprocessForML rebins onto the model grid
E_BINNING = [-10.0, 0.25, 48.0]  # meV
TEMPERATURE_LOG = "SampleTemp"


def main(nexus_file, output_dir):
    run = os.path.splitext(os.path.basename(nexus_file))[0].replace(".nxs", "")
    DgsReduction(SampleInputFile=nexus_file, IncidentEnergyGuess=EI, UseIncidentEnergyGuess=False,
                 EnergyTransferRange=E_BINNING, OutputWorkspace="reduced")
    SofQW(InputWorkspace="reduced", QAxisBinning=Q_BINNING, EMode="Direct", EFixed=mtd["reduced"].getRun()["Ei"].value,
          Method="NormalisedPolygon", OutputWorkspace="sqw")
    PreprocessForML(InputWorkspace="sqw", TemperatureLog=TEMPERATURE_LOG, OutputWorkspace="chi")
    table = PredictForceConstants(InputWorkspace="chi", OutputWorkspace="force_constants",
                                  OutputReconstruction="chi_predicted")
    SaveNexusProcessed(InputWorkspace="sqw", Filename=os.path.join(output_dir, f"{run}_sqw.nxs"))
    SaveNexusProcessed(InputWorkspace="chi", Filename=os.path.join(output_dir, f"{run}_chi_ml.nxs"))
    names, values, stds = table.column("Name"), table.column("Value"), table.column("Std")
    result = {"run": run, "names": names, "force_constants": values, "std": stds, "units": "N/m",
              "nmse": table.column("NMSE")[0], "temperature": table.column("Temperature")[0]}
    with open(os.path.join(output_dir, f"{run}_force_constants.json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    np.savetxt(os.path.join(output_dir, f"{run}_force_constants.csv"), np.column_stack([values, stds]),
               delimiter=",", header="value_N_per_m,std_N_per_m  rows: " + " ".join(names))
    print(f"{run}: " + ", ".join(f"{n} {v:.2f}±{s:.2f}" for n, v, s in zip(names, values, stds)) + " N/m")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
