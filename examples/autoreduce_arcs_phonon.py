#!/usr/bin/env python
"""SNS autoreduction post-processing step: force constants of a powder run on ARCS or SEQUOIA (any material).

How SNS runs it: the autoreduction service calls ``python reduce_ARCS.py <event nexus> <output directory>``
(``reduce_SEQ.py`` on SEQUOIA). An instrument scientist adds, at the end of that script::

    from autoreduce_arcs_phonon import phonon_step
    phonon_step(nexus_file, output_dir, material="Al")   # never raises: the reduction is kept whatever happens

The step reads what the reduction produced in ``<output directory>`` (``<run>_sqw.nxs``, the SofQW processed
NeXus, or ``<run>.nxspe``); when neither is there it reduces the run itself (``DgsReduction`` with the facility
set to SNS, the Ei guess from the ``EnergyRequest`` log, an energy binning scaled by Ei, then
``SofQW(Method='NormalisedPolygon')``). Then: PreprocessForML → PredictForceConstants (a bundle trained for the
material) or FitForceConstantsNelderMead (any material) → ``<run>_phonon.json`` and ``.csv`` (constants and
their standard deviations), ``<run>_phonon.png`` (measured vs model spectrum, constants with error bars) and
one row in ``<output directory>/phonon_experiment_log.csv``. Any error of ours is logged and the step returns.

Run alone (same arguments as the reduction script)::

    python autoreduce_arcs_phonon.py <event nexus> <output directory> [--material Fe] [--model BUNDLE]
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import traceback

LOG = logging.getLogger("phonon_ml.autoreduce")
Q_STEP = 0.05            # 1/Angstrom, the |Q| binning of the reduction (PreprocessForML rebins onto the model grid)
E_BINNING = (-0.2, 0.005, 0.95)  # energy transfer from -0.2 Ei to 0.95 Ei in steps of 0.005 Ei (Ei-scaled)
LOG_COLUMNS = ("run", "material", "instrument", "ei_mev", "temperature_k", "method", "nmse", "constants_n_per_m",
               "std_n_per_m")


def run_name(nexus_file: str) -> str:
    """``ARCS_123456`` from ``/SNS/ARCS/IPTS-1/nexus/ARCS_123456.nxs.h5``."""
    name = os.path.basename(nexus_file)
    for ext in (".h5", ".nxs", ".nxspe"):
        name = name[: -len(ext)] if name.endswith(ext) else name
    return name


def find_reduced(nexus_file: str, output_dir: str) -> str | None:
    """The reduced file the reduction script wrote for this run (SofQW NeXus first, then NXSPE), or None."""
    run = run_name(nexus_file)
    for name in (f"{run}_sqw.nxs", f"{run}_SofQW.nxs", f"{run}.nxspe", f"{run}_reduced.nxspe"):
        path = os.path.join(output_dir, name)
        if os.path.isfile(path):
            return path
    return None


def reduce_run(nexus_file: str, output_dir: str) -> str:
    """Reduce the run as the SNS DGS scripts do and save its S(|Q|,E) as ``<run>_sqw.nxs``."""
    from mantid.kernel import config
    from mantid.simpleapi import DgsReduction, Load, SaveNexusProcessed, SofQW, mtd

    config["default.facility"] = "SNS"
    raw = Load(Filename=nexus_file, OutputWorkspace="__phonon_raw", MetaDataOnly=True)
    ei_guess = float(raw.getRun()["EnergyRequest"].value[0])
    lo, step, hi = (f * ei_guess for f in E_BINNING)
    DgsReduction(SampleInputFile=nexus_file, IncidentEnergyGuess=ei_guess, UseIncidentEnergyGuess=False,
                 EnergyTransferRange=[lo, step, hi], OutputWorkspace="__phonon_reduced")
    ei = float(mtd["__phonon_reduced"].getRun()["Ei"].value)
    q_max = 2.0 * (2.0 * ei / 2.0721) ** 0.5  # beyond the kinematic limit at 180 degrees
    SofQW(InputWorkspace="__phonon_reduced", QAxisBinning=[0.0, Q_STEP, q_max], EMode="Direct", EFixed=ei,
          Method="NormalisedPolygon", OutputWorkspace="__phonon_sqw")
    path = os.path.join(output_dir, f"{run_name(nexus_file)}_sqw.nxs")
    SaveNexusProcessed(InputWorkspace="__phonon_sqw", Filename=path)
    return path


def load_reduced(path: str, name: str):
    """The reduced file as an S(|Q|,E) workspace (phonon-ml's readers: processed NeXus or NXSPE, logs kept)."""
    from mantid.api import mtd

    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.readers import read_spectrum

    ws = spectrum_to_workspace(read_spectrum(path), title=os.path.basename(path))
    mtd.addOrReplace(name, ws)
    return ws


def phonon_step(nexus_file: str, output_dir: str, material: str = "Al", model: str = "",
                instrument: str = "") -> dict | None:
    """The post-processing step; returns the result written, or None after logging any error (never raises)."""
    try:
        return _phonon_step(nexus_file, output_dir, material, model, instrument)
    except Exception:  # noqa: BLE001 - autoreduction must keep the reduced data whatever goes wrong here
        LOG.error("phonon-ml step failed for %s (the reduced data are kept):\n%s", nexus_file, traceback.format_exc())
        return None


def _phonon_step(nexus_file: str, output_dir: str, material: str, model: str, instrument: str) -> dict:
    import phonon_ml_core.mantid_plugins  # noqa: F401  registers the algorithms (no-op when Mantid already has them)
    from mantid.simpleapi import FitForceConstantsNelderMead, PredictForceConstants, PreprocessForML

    from phonon_ml_core.data.jsonio import write_json
    from phonon_ml_core.mantid_support.adapter import bundle_grid_description, bundle_path_or_default, \
        resolve_material

    run = run_name(nexus_file)
    reduced = find_reduced(nexus_file, output_dir) or reduce_run(nexus_file, output_dir)
    LOG.info("phonon-ml: %s from %s", run, reduced)
    load_reduced(reduced, f"{run}_sqw")
    chi = PreprocessForML(InputWorkspace=f"{run}_sqw", Material=material, Instrument=instrument,
                          OutputWorkspace=f"{run}_chi")
    sample = resolve_material(material)
    bundle = bundle_path_or_default(model)
    use_bundle = bundle is not None and bundle_grid_description(bundle)["material"].same_as(sample) and \
        chi.getNumberHistograms() == bundle_grid_description(bundle)["q"].size
    if use_bundle:
        table, fitted = PredictForceConstants(InputWorkspace=f"{run}_chi", ModelBundle=bundle,
                                              OutputWorkspace=f"{run}_fc", OutputReconstruction=f"{run}_model")
        method = "predict"
    else:
        table, fitted = FitForceConstantsNelderMead(InputWorkspace=f"{run}_chi", Material=material,
                                                    OutputWorkspace=f"{run}_fc", OutputFittedSpectrum=f"{run}_model")
        method = "fit"
    names, values, stds = table.column("Name"), table.column("Value"), table.column("Std")
    run_log = chi.getRun()
    result = {"run": run, "reduced_file": reduced, "material": sample.name, "lattice": sample.lattice,
              "instrument": _instrument(chi), "ei_mev": float(run_log.getProperty("Ei").value),
              "temperature_k": table.column("Temperature")[0], "method": method, "names": names,
              "force_constants": values, "std": stds, "units": "N/m", "nmse": table.column("NMSE")[0]}
    write_json(os.path.join(output_dir, f"{run}_phonon.json"), result)
    with open(os.path.join(output_dir, f"{run}_phonon.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "value_n_per_m", "std_n_per_m"])
        w.writerows(zip(names, values, stds))
    summary_figure(os.path.join(output_dir, f"{run}_phonon.png"), chi, fitted, result)
    append_log_row(os.path.join(output_dir, "phonon_experiment_log.csv"), result)
    LOG.info("%s: %s", run, ", ".join(f"{n} {v:.2f}±{s:.2f}" for n, v, s in zip(names, values, stds)))
    return result


def _instrument(ws) -> str:
    from phonon_ml_core.mantid_support.adapter import workspace_experiment

    recorded = workspace_experiment(ws)
    return recorded.instrument if recorded is not None else ""


def summary_figure(path: str, measured, model, result: dict) -> None:
    """Measured and model χ''(|Q|,E) side by side, and the constants with their error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    e = measured.readX(0)
    q = measured.getAxis(1).extractValues()
    for ax, ws, title in ((axes[0], measured, "measured"), (axes[1], model, f"model ({result['method']})")):
        ax.pcolormesh(q, e, np.asarray(ws.extractY()).T, shading="flat")
        ax.set(xlabel="|Q| (1/Å)", ylabel="E (meV)", title=f"{result['run']}: {title}")
    x = np.arange(len(result["names"]))
    axes[2].errorbar(x, result["force_constants"], yerr=np.nan_to_num(result["std"]), fmt="o", capsize=3)
    axes[2].set_xticks(x, result["names"])
    axes[2].set(ylabel="N/m", title=f"{result['material']} at {result['temperature_k']:.0f} K, NMSE "
                                    f"{result['nmse']:.3f}")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def append_log_row(path: str, result: dict) -> None:
    """One row per run in the experiment log (header written once)."""
    new = not os.path.isfile(path)
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(LOG_COLUMNS)
        w.writerow([result["run"], result["material"], result["instrument"], result["ei_mev"], result["temperature_k"],
                    result["method"], result["nmse"], " ".join(f"{v:.4g}" for v in result["force_constants"]),
                    " ".join(f"{v:.4g}" for v in result["std"])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("nexus_file")
    parser.add_argument("output_dir")
    parser.add_argument("--material", default="Al", help="built-in symbol or material file (default Al)")
    parser.add_argument("--model", default="", help="model bundle (default: the shipped one when it fits)")
    parser.add_argument("--instrument", default="", help="instrument (default: from the reduced file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    phonon_step(args.nexus_file, args.output_dir, args.material, args.model, args.instrument)
    return 0  # never fail the reduction


if __name__ == "__main__":
    sys.exit(main())
