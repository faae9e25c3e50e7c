"""Thin adapters between Mantid workspaces and the phonon-ml core (docs/mantid.md).

The Mantid algorithms in ``plugins/`` add no science: they convert their input workspaces to a
:class:`~phonon_ml_core.data.spectrum.Spectrum` with :func:`workspace_to_spectrum`, call the same core
functions as the CLI, and convert the results back with :func:`spectrum_to_workspace` and
:func:`force_constants_table`. Everything here imports ``mantid`` lazily (inside functions), so this
module imports, and its pure-Python parts are testable, without Mantid.

Workspace layout (SofQW output, docs/mantid_api.md §0, §6–7): X = energy transfer in ``DeltaE`` (meV) bin
edges; vertical axis = |Q| in ``MomentumTransfer`` as a ``BinEdgeAxis`` (n_Q + 1 edges, point values are
accepted on input); one spectrum per |Q| bin, so ``extractY()`` is (n_Q, n_E) = the transpose of the
core's (n_E, n_Q). The transposed layout (X = |Q|, vertical = DeltaE) is accepted on input. Bins without
coverage are NaN. Logs: ``Ei`` (meV) and ``SampleTemp`` (K, with fallbacks; time series averaged).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from phonon_ml_core.prediction.predict import predict_spectra, shipped_bundle_path  # noqa: F401  (core; used by the plugins)

#: The algorithms in ``plugins/``, one file each, named after the algorithm (= the Python class name).
PLUGIN_ALGORITHMS: tuple[str, ...] = ("SimulatePowderINS", "PreprocessForML", "TrainPhononVAE",
                                      "PredictForceConstants", "FitForceConstantsNelderMead", "AdaptPhononModel")
#: Mantid category of the algorithms.
CATEGORY = "Inelastic\\PhononML"
#: Energy-transfer unit IDs and their factor to meV (as the NeXus reader).
ENERGY_UNITS: dict[str, float] = {"DeltaE": 1.0, "DeltaE_inWavenumber": 0.12398419843320026,
                                  "DeltaE_inFrequency": 0.0041356676969248}
Q_UNIT = "MomentumTransfer"
#: Sample logs tried for the temperature (after the one the user names), in order.
TEMPERATURE_LOGS: tuple[str, ...] = ("SampleTemp", "sample_temperature", "SampleTemperature", "Temperature",
                                     "temperature", "SensorA", "SensorB", "SensorC", "SensorD",
                                     "SensorA250", "SensorB250", "SensorTemp")
#: Sample logs tried for the incident energy (meV), in order.
EI_LOGS: tuple[str, ...] = ("Ei", "EI", "ei", "EnergyRequest", "Efixed")
#: Logs written on output workspaces so that spectra round-trip without loss.
QUANTITY_LOG = "PhononMLQuantity"
NORMALIZATION_LOG = "PhononMLNormalization"
MASK_LOG = "PhononMLGridMaskSHA256"
#: Directory name of the plugins inside an installed package (setup.py maps plugins/ there).
INSTALLED_PLUGIN_PACKAGE = "mantid_algorithms"


# ------------------------------------------------------------------------------------------ locating
def plugins_directory() -> Path:
    """The directory holding the plugin files (:data:`PLUGIN_ALGORITHMS`).

    The repository's ``plugins/`` (beside the ``phonon_ml_core`` package) when it holds the plugins,
    else the installed copy ``phonon_ml_core/mantid_algorithms/`` (setup.py: ``package_dir`` maps
    ``phonon_ml_core.mantid_algorithms`` to ``plugins``). FileNotFoundError when neither exists.
    """
    package = Path(__file__).resolve().parents[1]  # phonon_ml_core/
    candidates = [package.parent / "plugins", package / INSTALLED_PLUGIN_PACKAGE]
    env = os.environ.get("PHONON_ML_MANTID_PLUGINS")
    if env:
        candidates.insert(0, Path(env))
    for c in candidates:
        if all((c / f"{name}.py").is_file() for name in PLUGIN_ALGORITHMS):
            return c
    raise FileNotFoundError("the phonon-ml Mantid plugins were not found in " + ", ".join(map(str, candidates))
                            + ": reinstall phonon-ml (the plugins ship as phonon_ml_core/mantid_algorithms)")


def plugin_files() -> list[Path]:
    """The plugin files, in :data:`PLUGIN_ALGORITHMS` order."""
    d = plugins_directory()
    return [d / f"{name}.py" for name in PLUGIN_ALGORITHMS]


def mantid_available() -> bool:
    """True when ``mantid.api`` imports (Mantid installed in this Python)."""
    try:
        import mantid.api  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------ logs
def _log_number(run: Any, name: str) -> float | None:
    """Finite mean of a numeric (possibly time-series) log, or None."""
    try:
        if not run.hasProperty(name):
            return None
        value = run.getProperty(name).value
    except (RuntimeError, KeyError, ValueError):
        return None
    from phonon_ml_core.readers._common import finite_mean

    return finite_mean(value)


def find_log(ws: Any, names: Iterable[str]) -> tuple[str | None, float | None]:
    """(name, value) of the first log in ``names`` with a finite number (time series averaged)."""
    run = ws.getRun()
    for name in names:
        if not name:
            continue
        v = _log_number(run, name)
        if v is not None:
            return name, v
    return None, None


def sample_temperature(ws: Any, log_name: str = "SampleTemp") -> tuple[str | None, float | None]:
    """Sample temperature (K) from ``log_name`` then the usual fallbacks; (None, None) when absent or ≤ 0."""
    name, value = find_log(ws, (log_name, *[n for n in TEMPERATURE_LOGS if n != log_name]))
    if value is None or value <= 0:
        return None, None
    return name, value


def incident_energy(ws: Any) -> tuple[str | None, float | None]:
    """Incident energy (meV) from the run logs (``Ei`` first; docs/mantid_api.md §5); None when absent."""
    name, value = find_log(ws, EI_LOGS)
    if value is None or value <= 0:
        return None, None
    return name, value


def _log_text(ws: Any, name: str) -> str | None:
    run = ws.getRun()
    try:
        if run.hasProperty(name):
            return str(run.getProperty(name).value)
    except (RuntimeError, KeyError):
        return None
    return None


# ------------------------------------------------------------------------------------------ layout
def _unit_id(axis: Any) -> str:
    try:
        return str(axis.getUnit().unitID())
    except (RuntimeError, AttributeError):
        return ""


def sqw_layout(ws: Any) -> str:
    """'sofqw' (X = DeltaE, vertical = |Q|) or 'transposed' (X = |Q|, vertical = DeltaE).

    ValueError, naming the fix, for anything else (X not energy transfer, vertical axis not |Q|, text or
    spectrum-number axes, ragged bins).
    """
    if not hasattr(ws, "getNumberHistograms"):
        raise ValueError(f"expected a MatrixWorkspace holding S(|Q|,E), got a {type(ws).__name__}")
    x_unit, v_unit = _unit_id(ws.getAxis(0)), _unit_id(ws.getAxis(1))
    vaxis = ws.getAxis(1)
    if x_unit in ENERGY_UNITS and v_unit == Q_UNIT:
        layout = "sofqw"
    elif x_unit == Q_UNIT and v_unit in ENERGY_UNITS:
        layout = "transposed"
    elif x_unit not in ENERGY_UNITS and x_unit != Q_UNIT:
        raise ValueError(f"the X unit is '{x_unit or 'none'}', not energy transfer (DeltaE): convert with "
                         "ConvertUnits(Target='DeltaE', EMode='Direct') and SofQW(Method='NormalisedPolygon') first")
    else:
        what = "spectrum numbers" if vaxis.isSpectra() else ("text labels" if vaxis.isText() else f"'{v_unit or 'none'}'")
        raise ValueError(f"the vertical axis holds {what}, not |Q| (MomentumTransfer): run "
                         "SofQW(InputWorkspace, QAxisBinning=..., EMode='Direct', Method='NormalisedPolygon') "
                         "to get powder S(|Q|,E)")
    if vaxis.isText() or vaxis.isSpectra():
        raise ValueError("the vertical axis must be numeric (|Q| or energy-transfer values)")
    if not ws.isHistogramData():
        raise ValueError("the workspace holds point data: S(|Q|,E) from SofQW has bin edges; "
                         "ConvertToHistogram first")
    return layout


def check_sqw_workspace(ws: Any) -> str | None:
    """The problem with ``ws`` as S(|Q|,E) input, or None (for validateInputs)."""
    try:
        sqw_layout(ws)
    except ValueError as exc:
        return str(exc)
    return None


def _axis_edges(values: np.ndarray, n: int, what: str) -> np.ndarray:
    from phonon_ml_core.readers._common import axis_edges

    return axis_edges(values, n, what, "workspace")


def workspace_quantity(ws: Any) -> str:
    """"S" or "chi''": the ``PhononMLQuantity`` log, else "chi''" when the Y label says so, else "S"."""
    quantity = _log_text(ws, QUANTITY_LOG)
    if quantity in ("S", "chi''"):
        return quantity
    label = (str(ws.YUnitLabel()) + " " + str(ws.YUnit())).lower()
    return "chi''" if ("chi" in label or "susceptib" in label) else "S"


def workspace_to_spectrum(ws: Any, temperature: float | None = None, ei_mev: float | None = None,
                          temperature_log: str = "SampleTemp", quantity: str | None = None):
    """A :class:`Spectrum` (n_E, n_Q) on the workspace's own axes; mask = finite pixels.

    Args:
        ws: MatrixWorkspace in SofQW layout or transposed (X = |Q|, vertical = DeltaE).
        temperature: K, overriding the logs (``temperature_log`` then :data:`TEMPERATURE_LOGS`).
        ei_mev: meV, overriding the ``Ei`` log.
        quantity: "S" or "chi''"; default the ``PhononMLQuantity`` log, else "chi''" when the Y label
            says so, else "S".
    """
    from phonon_ml_core.readers._common import check_data, spectrum_on_axes

    layout = sqw_layout(ws)
    y = np.array(ws.extractY(), dtype=float)
    e = np.array(ws.extractE(), dtype=float)
    x = np.array(ws.readX(0), dtype=float)
    nh, nb = y.shape
    if nh > 1:
        xs = np.array(ws.extractX(), dtype=float)
        if not np.allclose(xs, xs[:1], equal_nan=True):
            raise ValueError("the X bins differ between spectra: Rebin to common bins first")
    vert = np.asarray(ws.getAxis(1).extractValues(), dtype=float)
    check_data(y, e, "workspace")
    x_unit, v_unit = _unit_id(ws.getAxis(0)), _unit_id(ws.getAxis(1))
    if layout == "sofqw":
        e_edges = _axis_edges(x, nb, "energy-transfer (X)") * ENERGY_UNITS[x_unit]
        q_edges = _axis_edges(vert, nh, "|Q| (vertical)")
        inten, errs = y.T, e.T
    else:
        q_edges = _axis_edges(x, nb, "|Q| (X)")
        e_edges = _axis_edges(vert, nh, "energy-transfer (vertical)") * ENERGY_UNITS[v_unit]
        inten, errs = y, e
    t_log, t = (None, float(temperature)) if temperature is not None else sample_temperature(ws, temperature_log)
    ei_log, ei = (None, float(ei_mev)) if ei_mev is not None else incident_energy(ws)
    if quantity is None:
        quantity = workspace_quantity(ws)
    meta = {"format": "mantid_workspace", "layout": layout, "x_unit": x_unit, "vertical_unit": v_unit,
            "ei_log": ei_log, "temperature_log": t_log, "workspace_title": str(ws.getTitle())}
    s = spectrum_on_axes(inten, errs, e_edges, q_edges, ei_mev=ei, temperature=t, quantity=quantity,
                         metadata=meta, instrument="")
    norm = _log_text(ws, NORMALIZATION_LOG)
    if norm == "mean":
        from phonon_ml_core.data.normalization import is_mean_normalized

        if is_mean_normalized(s.intensity, s.grid.mask, atol=1e-6):
            from dataclasses import replace
            s = replace(s, normalization="mean")
    if s.errors is not None and not np.any(s.errors[s.grid.mask]):
        from dataclasses import replace
        s = replace(s, errors=None)  # Mantid workspaces always carry E; all-zero means "no errors"
    return s


def on_grid(spectrum, grid):
    """``spectrum`` on a model's ``grid`` (same axes): :func:`phonon_ml_core.prediction.predict.onto_bundle_grid`."""
    from phonon_ml_core.prediction.predict import onto_bundle_grid

    return onto_bundle_grid(spectrum, grid)


# ------------------------------------------------------------------------------------------ output
def _y_label(spectrum) -> str:
    q = "chi''(|Q|,E)" if spectrum.quantity == "chi''" else "S(|Q|,E)"
    return q + (" (mean-normalised)" if spectrum.normalization == "mean" else "")


def spectrum_to_workspace(spectrum, title: str = "", parent: Any = None):
    """A Workspace2D laid out like SofQW output holding one spectrum (NaN outside the mask).

    X = DeltaE bin edges (meV), vertical = |Q| ``BinEdgeAxis`` in MomentumTransfer, one spectrum per
    |Q| bin; logs ``Ei`` (meV), ``SampleTemp`` (K, when known), ``PhononMLQuantity``,
    ``PhononMLNormalization`` and ``PhononMLGridMaskSHA256``. ``parent``'s logs are not copied (the
    workspace is built with the clean ``WorkspaceFactory.create("Workspace2D", ...)`` form).
    """
    from mantid.api import BinEdgeAxis, WorkspaceFactory

    if spectrum.is_set:
        raise ValueError("spectrum_to_workspace takes one spectrum; convert the members of a set one by one")
    s = spectrum.masked()
    g = s.grid
    n_e, n_q = g.shape
    y = np.asarray(s.intensity, dtype=float).T
    e = np.zeros_like(y) if s.errors is None else np.where(np.isfinite(y), np.asarray(s.errors, float).T, 0.0)
    ws = WorkspaceFactory.create("Workspace2D", n_q, n_e + 1, n_e)
    edges = np.asarray(g.energy_edges, dtype=float)
    for i in range(n_q):
        ws.setX(i, edges)
        ws.setY(i, np.ascontiguousarray(y[i]))
        ws.setE(i, np.ascontiguousarray(e[i]))
    ws.getAxis(0).setUnit("DeltaE")
    axis = BinEdgeAxis.create(n_q + 1)
    axis.setUnit(Q_UNIT)
    for i, v in enumerate(np.asarray(g.q_edges, dtype=float)):
        axis.setValue(i, float(v))
    ws.replaceAxis(1, axis)
    ws.setYUnitLabel(_y_label(s))
    if title:
        ws.setTitle(title)
    run = ws.getRun()
    run.addProperty("Ei", float(g.ei_mev), "meV", True)
    if s.temperature is not None and np.isfinite(s.temperature):
        run.addProperty("SampleTemp", float(s.temperature), "K", True)
    run.addProperty(QUANTITY_LOG, str(s.quantity), True)
    run.addProperty(NORMALIZATION_LOG, str(s.normalization), True)
    run.addProperty(MASK_LOG, g.mask_hash(), True)
    return ws


TABLE_COLUMNS: tuple[tuple[str, str], ...] = (("str", "Input"), ("int", "Index"), ("str", "Name"),
                                              ("double", "Value"), ("double", "Std"), ("str", "Units"))


def force_constants_table(entries: Sequence[dict[str, Any]], extra_columns: Sequence[str] = ()):
    """A TableWorkspace with one row per (input, constant): Input, Index, Name, Value, Std, Units, extras.

    ``entries``: dicts with ``input`` (str), ``index`` (int), ``force_constants`` (5,), ``std`` (5,) and
    a float for each name in ``extra_columns`` (e.g. "NMSE", "Evaluations", "Temperature"); extras repeat on
    every row of an input. NaN std (singular curvature) is written as NaN.
    """
    from mantid.api import WorkspaceFactory

    from phonon_ml_core.physics.units import FORCE_CONSTANT_NAMES

    table = WorkspaceFactory.createTable()
    for ctype, name in TABLE_COLUMNS:
        table.addColumn(ctype, name)
    for name in extra_columns:
        table.addColumn("double", name)
    for entry in entries:
        fc = np.asarray(entry["force_constants"], dtype=float)
        std = np.asarray(entry.get("std", np.full(5, np.nan)), dtype=float)
        for k, name in enumerate(FORCE_CONSTANT_NAMES):
            row = [str(entry.get("input", "")), int(entry.get("index", 0)), name, float(fc[k]), float(std[k]), "N/m"]
            row += [float(entry.get(c, np.nan)) for c in extra_columns]
            table.addRow(row)
    return table


# ------------------------------------------------------------------------------------------ validation helpers
def check_output_file(path: str, overwrite: bool) -> str | None:
    """The problem with writing ``path`` (exists without overwrite, missing or read-only folder), or None."""
    from phonon_ml_core.data.fileio import check_output_path

    if not path:
        return "give an output path"
    try:
        check_output_path(path, overwrite)
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        return str(exc)
    return None


def check_output_bundle(path: str, overwrite: bool) -> str | None:
    """The problem with writing a bundle directory at ``path`` (:func:`fileio.check_bundle_output`), or None."""
    from phonon_ml_core.data.fileio import check_bundle_output

    if not path:
        return "give the output bundle directory"
    try:
        check_bundle_output(path, overwrite, overwrite_hint="set Overwrite")
    except (FileExistsError, FileNotFoundError, PermissionError) as exc:
        return str(exc)
    return None


def default_bundle_path() -> Path | None:
    """The bundle shipped in the repository's ``models/``, or None."""
    return shipped_bundle_path()


def bundle_grid_description(path: str | os.PathLike) -> dict[str, Any]:
    """The ``grid`` entry of a bundle's metadata.json (no torch): q, energy, ei_mev, mask_sha256.

    FileNotFoundError / ValueError with the reason for a missing directory or a non-bundle.
    """
    from phonon_ml_core.learn.bundle_metadata import read_bundle_metadata

    _, data = read_bundle_metadata(path)
    try:
        grid = data["grid"]
        return {"q": np.asarray(grid["q"], float), "energy": np.asarray(grid["energy"], float),
                "ei_mev": float(grid["ei_mev"]), "mask_sha256": grid.get("mask_sha256"),
                "family": data.get("autoencoder", {}).get("family"),
                "requires_temperature": "temperature" in (data.get("regressor") or {}).get("conditions", ())}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} metadata.json lacks the grid description: {exc}") from exc


def group_members(ws: Any) -> list[tuple[str | None, Any]]:
    """[(name, workspace)] of a WorkspaceGroup's members, or [(None, ws)] for a single workspace."""
    if hasattr(ws, "getNames"):
        return [(name, ws.getItem(i)) for i, name in enumerate(ws.getNames())]
    return [(None, ws)]


def bundle_path_or_default(path: str) -> str | None:
    """``path`` when given, else the shipped bundle's path, or None when there is none."""
    if path:
        return path
    found = default_bundle_path()
    return None if found is None else str(found)


def check_members_for_bundle(members: Sequence[tuple[str | None, Any]], bundle: str | None) -> dict[str, str]:
    """validateInputs issues ({property: message}) of using ``members`` with the bundle at ``bundle``: no
    bundle, a missing or unreadable bundle (ModelBundle), a member not a χ''(|Q|,E) workspace or on another
    grid (InputWorkspace, the first such member named)."""
    issues: dict[str, str] = {}
    if not members:
        return {"InputWorkspace": "the group is empty"}
    if bundle is None:
        issues["ModelBundle"] = "no model bundle given and none is shipped in models/: set ModelBundle"
    for name, member in members:
        problem = check_sqw_workspace(member)
        if problem is None and bundle is not None:
            problem = check_grid_matches_bundle(member, bundle)
            if problem and ("does not exist" in problem or "not a phonon-ml" in problem or "unreadable" in problem):
                issues["ModelBundle"] = problem
                problem = None
        if problem:
            issues["InputWorkspace"] = (f"{name}: " if name else "") + problem
            break
    return issues


def member_without_temperature(members: Sequence[tuple[str | None, Any]], log_name: str) -> str | None:
    """The label of the first member with no sample temperature log (``log_name`` or the fallbacks), or None."""
    for name, member in members:
        if sample_temperature(member, log_name)[1] is None:
            return name or "the workspace"
    return None


def check_grid_matches_bundle(ws: Any, path: str | os.PathLike) -> str | None:
    """The problem with predicting from ``ws`` with the bundle at ``path`` (missing, not a bundle, other grid)."""
    try:
        desc = bundle_grid_description(path)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    try:
        layout = sqw_layout(ws)
    except ValueError as exc:
        return str(exc)
    nh, nb = ws.getNumberHistograms(), ws.blocksize()
    n_e, n_q = (nb, nh) if layout == "sofqw" else (nh, nb)
    if (n_e, n_q) != (desc["energy"].size, desc["q"].size):
        return (f"mismatched grid: the workspace has n_E × n_Q = {n_e} × {n_q} bins but the model bundle {path} "
                f"was trained on {desc['energy'].size} × {desc['q'].size}: run PreprocessForML with "
                "ModelBundle set to this bundle first")
    return None


# ------------------------------------------------------------------------------------------ phonopy
def force_constants_from_phonopy(path: str | os.PathLike, tolerance: float = 0.05) -> tuple[np.ndarray, dict]:
    """Project phonopy force constants of an fcc crystal onto [1XX, 1XY, 1ZZ, 2XX, 2YY] (N/m).

    ``path`` is a phonopy yaml (``phonopy.yaml``/``phonopy_params.yaml``, with force constants inside or a
    ``FORCE_CONSTANTS``/``force_constants.hdf5`` beside it). The coupling tensors φ(l) = −Φ(0, l) of every
    first- and second-shell bond of one atom are fitted by least squares with the symmetry-adapted shell
    basis of :class:`~phonon_ml_core.physics.bvk.BvKModel` (conventions §1); further shells are ignored.

    Returns (constants, info) with info = {lattice_parameter (Å), mass (u), residual (relative RMS of the
    fit on the two shells), n_bonds}. ValueError for a non-fcc structure or a supercell missing bonds.
    """
    import phonopy

    from phonon_ml_core.physics.units import N_PER_M_TO_EV_PER_A2
    from phonon_ml_core.physics.bvk import BvKModel

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"phonopy file {p} does not exist")
    kwargs: dict[str, Any] = {"produce_fc": True, "log_level": 0, "is_nac": False}
    for name in ("FORCE_CONSTANTS", "force_constants.hdf5"):
        if (p.parent / name).is_file():
            kwargs["force_constants_filename"] = str(p.parent / name)
            break
    try:
        ph = phonopy.load(str(p), **kwargs)
    except Exception as exc:  # noqa: BLE001 - phonopy raises many types for bad files
        raise ValueError(f"{p} could not be read by phonopy ({type(exc).__name__}: {exc}); give a phonopy yaml "
                         "with force constants (phonopy --writefc / Phonopy.save(settings={'force_constants': True}))") from exc
    fc = ph.force_constants
    if fc is None:
        raise ValueError(f"{p} holds no force constants (only displacements?): produce them with phonopy first")
    sc = ph.supercell
    lattice = np.asarray(sc.cell, dtype=float)
    spos = np.asarray(sc.scaled_positions, dtype=float)
    i0 = int(ph.primitive.p2s_map[0])
    row = fc[0] if fc.shape[0] != fc.shape[1] else fc[i0]
    d = spos - spos[i0]
    d -= np.round(d)
    r = d @ lattice
    dist = np.linalg.norm(r, axis=1)
    nn = dist[dist > 1e-6].min()
    a = nn * np.sqrt(2.0)  # fcc: nearest neighbours at a/√2
    model = BvKModel(force_constants=np.zeros(5), lattice_parameter=a, mass=float(ph.primitive.masses[0]))
    bonds = model.bond_vectors
    basis = model.bond_basis  # (L, 5, 3, 3)
    rows, rhs = [], []
    for bl, bb in zip(bonds, basis):
        j = np.where(np.linalg.norm(r - bl, axis=1) < tolerance * a)[0]
        if len(j) != 1:
            raise ValueError(f"the phonopy supercell does not hold the bond {np.round(bl / a, 3).tolist()} a exactly "
                             "once: the structure is not fcc or the supercell is too small for two shells (use ≥ 2×2×2 "
                             "conventional cells)")
        phi = -np.asarray(row[j[0]], dtype=float) / N_PER_M_TO_EV_PER_A2  # eV/Å² → N/m, φ = −Φ
        rows.append(bb.reshape(5, 9).T)
        rhs.append(phi.reshape(9))
    a_mat, b_vec = np.concatenate(rows), np.concatenate(rhs)
    coef, *_ = np.linalg.lstsq(a_mat, b_vec, rcond=None)
    res = a_mat @ coef - b_vec
    rel = float(np.sqrt((res ** 2).mean()) / max(np.sqrt((b_vec ** 2).mean()), 1e-30))
    info = {"lattice_parameter": float(a), "mass": float(ph.primitive.masses[0]), "residual": rel,
            "n_bonds": int(len(bonds)), "source": str(p)}
    return coef, info


# ------------------------------------------------------------------------------------------ progress
def progress_callback(progress: Any, total: int, message: str) -> Callable[[dict], None]:
    """An ``on_epoch`` callback reporting a Mantid Progress every epoch (at most ``total`` reports)."""
    state = {"n": 0}

    def report(rec: dict) -> None:
        state["n"] += 1
        if state["n"] <= total:
            progress.report(f"{message}: {rec.get('stage', '')} epoch {rec.get('epoch', state['n'])}")

    return report


# ------------------------------------------------------------------------------------------ training
def check_training_file(path: str | os.PathLike) -> str | None:
    """The problem with ``path`` as a labelled simulated data set, or None
    (:func:`phonon_ml_core.learn.setup.check_training_file`)."""
    from phonon_ml_core.learn.setup import check_training_file as check

    return check(path)


def train_bundle(args: dict[str, Any], measured: Sequence[Any] = (), measured_names: Sequence[str] = (),
                 on_epoch: Callable[[dict], None] | None = None) -> Path:
    """Train and write a bundle exactly as ``phonon-ml train`` does
    (:func:`phonon_ml_core.learn.setup.train_to_bundle`), from in-memory measured spectra instead of files.
    ``args`` holds option values by their argparse names (data, output, overwrite, family, latent_dim, epochs, …;
    absent ones take the core's defaults). Returns the bundle path.
    """
    from phonon_ml_core.learn.setup import train_to_bundle

    names = list(measured_names) or [f"measured[{i}]" for i in range(len(measured))]
    options = {k: v for k, v in args.items() if k not in ("data", "output", "overwrite")}
    train_to_bundle(args["data"], args["output"], options, measured, names, [{"workspace": n} for n in names],
                    overwrite=bool(args.get("overwrite", False)), progress=False, overwrite_hint="set Overwrite",
                    on_epoch=on_epoch)
    return Path(args["output"])
