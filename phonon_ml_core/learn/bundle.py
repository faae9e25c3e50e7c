"""Model bundles: a trained autoencoder + force-constant regressor with everything needed to use them.

A bundle is a **directory** (docs/training.md)::

    BUNDLE/
      metadata.json             architecture, grid, normalisation, material and experiment (specs), named
                                targets, force-constant reference/ranges, training configuration and data
                                provenance, library versions, validation metrics, target standardisation,
                                SHA-256 of the weights
      autoencoder.safetensors   autoencoder weights (incl. the grid mask as the buffer "mask")
      regressor.safetensors     regressor weights
      training_log.jsonl        optional: one JSON record per epoch
      loss_curve.png            optional: loss curves

It is written into a temporary sibling directory and renamed into place, so a bundle is either complete
or absent. :func:`load_bundle` checks the format, the weight hashes, the architecture and the grid; predictions
refuse data whose recorded material or experiment differs from the bundle's (:mod:`.matching`).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.fileio import write_bundle_folder
from phonon_ml_core.data.jsonio import json_default
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.bundle_metadata import (metadata_experiment, metadata_material, metadata_targets,
                                                  library_versions, read_bundle_metadata, sha256_file)
from phonon_ml_core.learn.configs import STAGES
from phonon_ml_core.learn.inputs import spectra_tensor
from phonon_ml_core.learn.matching import check_matches
from phonon_ml_core.learn.networks import (FAMILIES, ForceConstantRegressor, SpectrumAutoencoder,
                                           autoencoder_from_config, regressor_from_config)
from phonon_ml_core.learn.targets import LINEWIDTH, Targets
from phonon_ml_core.specs import Experiment, Material

BUNDLE_FORMAT = "phonon-ml-bundle"
BUNDLE_VERSION = 1
BUNDLE_KIND = "autoencoder+regressor"
WEIGHT_FILES = ("autoencoder.safetensors", "regressor.safetensors")
#: Storage precisions of the weights (computation is always float32).
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
OPTIONAL_FILES = ("training_log.jsonl", "loss_curve.png")


@dataclass(eq=False)
class Bundle:
    """A trained two-stage model on a grid.

    Attributes:
        autoencoder: spectrum → latent code network (models.py).
        regressor: latent code → standardised force constants.
        grid: the grid (and mask) the networks were trained on.
        target_mean, target_std: standardisation of the named targets (N/m; γ dimensionless), (n_outputs,).
        metadata: the JSON metadata (see module docstring); its ``material``, ``experiment`` and ``targets``
            are read back as :attr:`material`, :attr:`experiment` and :attr:`targets`.
    """

    autoencoder: SpectrumAutoencoder
    regressor: ForceConstantRegressor
    grid: Grid
    target_mean: np.ndarray
    target_std: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target_mean = np.asarray(self.target_mean, dtype=float)
        self.target_std = np.asarray(self.target_std, dtype=float)
        n = self.regressor.n_outputs
        if self.target_mean.shape != (n,) or self.target_std.shape != (n,):
            raise ValueError(f"target standardisation must have shape ({n},)")
        if not (np.all(np.isfinite(self.target_std)) and np.all(self.target_std > 0)):
            raise ValueError("target standard deviations must be finite and positive")
        if self.regressor.latent_dim != self.autoencoder.latent_dim:
            raise ValueError(f"regressor latent dimension {self.regressor.latent_dim} differs from the "
                             f"autoencoder's {self.autoencoder.latent_dim}")
        if tuple(self.autoencoder.mask.shape) != self.grid.shape or \
                not np.array_equal(self.autoencoder.mask.numpy(), self.grid.mask):
            raise ValueError("the autoencoder's mask differs from the bundle grid's mask")
        self.autoencoder.eval()
        self.regressor.eval()
        metadata_targets(self.metadata, n)  # the recorded names fit the regressor

    @cached_property
    def targets(self) -> Targets:
        """The regressor's named outputs (the material's constants, then γ when it is learned)."""
        return metadata_targets(self.metadata, self.regressor.n_outputs)

    @property
    def target_names(self) -> tuple[str, ...]:
        """Names of all regressor outputs, e.g. ('1XX', '1XY', '2XX', '2YY', 'linewidth') for bcc."""
        return self.targets.names

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the force constants the bundle predicts (N/m), the material's order."""
        return self.targets.constants

    @cached_property
    def material(self) -> Material:
        """The material the bundle was trained for (aluminium for bundles that record none)."""
        return metadata_material(self.metadata)

    @cached_property
    def experiment(self) -> Experiment:
        """The experiment the bundle was trained for (older bundles: the standard settings on its grid)."""
        return metadata_experiment(self.metadata, self.grid)

    def check_data(self, spectra: Spectrum, what: str = "the input spectra") -> None:
        """Refuse spectra whose recorded material or experiment differs from the bundle's (ValueError saying
        what differs and what to do); spectra that record neither are not checked."""
        if spectra.material is not None or spectra.experiment is not None:
            check_matches(self.material, self.experiment, spectra, "the model bundle", what)

    @property
    def predicts_linewidth(self) -> bool:
        """True when the regressor also predicts the intrinsic linewidth γ (HWHM = γ·E), the target "linewidth"."""
        return self.targets.linewidth

    @property
    def family(self) -> str:
        return self.autoencoder.family

    # -- inference --------------------------------------------------------------------
    def _inputs(self, spectra: Spectrum | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
        if isinstance(spectra, Spectrum):
            self.check_data(spectra)
            single = not spectra.is_set
            s = spectra
        else:
            arr = np.asarray(spectra.detach().cpu() if isinstance(spectra, torch.Tensor) else spectra, dtype=float)
            if arr.ndim not in (2, 3) or arr.shape[-2:] != self.grid.shape:
                raise ValueError(f"spectra must have shape (n_E, n_Q) or (N, n_E, n_Q) = (…, {self.grid.shape[0]}, "
                                 f"{self.grid.shape[1]}) on the bundle's grid, got {arr.shape}")
            single = arr.ndim == 2
            s = Spectrum(intensity=arr, grid=self.grid)
        x, keep = spectra_tensor(s, self.grid, "input")
        if keep.size != s.n_spectra:
            bad = sorted(set(range(s.n_spectra)) - set(keep.tolist()))
            raise ValueError(f"input spectra {bad} are NaN on every valid pixel")
        return x, single

    @property
    def requires_temperature(self) -> bool:
        """True when the regressor takes the sample temperature (K) as an input."""
        return "temperature" in getattr(self.regressor, "conditions", ())

    def _temperatures(self, spectra: Any, temperature: Any, n: int) -> torch.Tensor | None:
        """Temperatures (n,) in K for the regressor, or None when it does not use them."""
        if not self.requires_temperature:
            return None
        if temperature is None and isinstance(spectra, Spectrum) and spectra.temperature is not None:
            temperature = spectra.temperatures()
        how = ("record it when preprocessing, or give it: --temperature on the command line, the Temperature "
               "property in Mantid")
        t = None if temperature is None else np.asarray(temperature, float).reshape(-1)
        if t is not None and t.size not in (1, n):
            raise ValueError(f"{t.size} temperatures for {n} spectra: give one temperature or one per spectrum")
        if t is None or not np.all(np.isfinite(t) & (t > 0)):
            raise ValueError(f"this bundle's regressor takes the sample temperature: give every spectrum its "
                             f"temperature in K ({how})")
        t = np.broadcast_to(t, (n,))
        return torch.tensor(t, dtype=torch.float32)

    @torch.no_grad()
    def encode(self, spectra: Spectrum | np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Latent posterior means and log-variances, each (N, latent) ((latent,) for one spectrum).

        logvar is None for the deterministic families (fcae, cnnae). Inputs are mean-normalised here
        (idempotent) and must be on the bundle's grid.
        """
        x, single = self._inputs(spectra)
        mu, lv = self.autoencoder.encode(x)
        mu_np = mu.numpy().astype(float)
        lv_np = None if lv is None else lv.numpy().astype(float)
        if single:
            return mu_np[0], None if lv_np is None else lv_np[0]
        return mu_np, lv_np

    @torch.no_grad()
    def predict(self, spectra: Spectrum | np.ndarray | torch.Tensor, n_samples: int = 10000,
                seed: int = 0, temperature: float | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Force constants (N/m) with uncertainties from ``n_samples`` latent draws per spectrum.

        Returns {'mean_code_prediction', 'mean', 'std'}, each (N, n_constants) ((n_constants,) for one spectrum,
        in the order of :attr:`names`), and, when the
        bundle predicts it, 'linewidth' and 'linewidth_std' (N,) (γ, mean over the draws, clamped at 0):
        the regressor at the posterior mean, and the mean and standard deviation of the regressor over
        z ~ N(mu, e^logvar) (vectorised over samples). For fcae/cnnae std is 0 and mean = mean_code_prediction.
        ``temperature`` (K, scalar or (N,)) overrides the spectra's own; a temperature-conditioned regressor
        (``requires_temperature``) needs one or the other.
        """
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be ≥ 1, got {n_samples}")
        x, single = self._inputs(spectra)
        t = self._temperatures(spectra, temperature, x.shape[0])
        mu, lv = self.autoencoder.encode(x)
        scale = torch.as_tensor(self.target_std, dtype=mu.dtype)
        shift = torch.as_tensor(self.target_mean, dtype=mu.dtype)
        mean_code = self.regressor(mu, t) * scale + shift
        if lv is None:
            mean, std = mean_code, torch.zeros_like(mean_code)
        else:
            gen = torch.Generator().manual_seed(int(seed))
            means, stds = [], []
            for i in range(mu.shape[0]):  # loop over spectra; samples are one batch
                eps = torch.randn((int(n_samples), mu.shape[1]), generator=gen, dtype=mu.dtype)
                pred = self.regressor(mu[i] + torch.exp(0.5 * lv[i]) * eps, None if t is None else t[i]) * scale + shift
                means.append(pred.mean(0))
                stds.append(pred.std(0, correction=0))
            mean, std = torch.stack(means), torch.stack(stds)
        out = {"mean_code_prediction": mean_code.numpy().astype(float), "mean": mean.numpy().astype(float),
               "std": std.numpy().astype(float)}
        if self.predicts_linewidth:  # the target "linewidth": reported separately (clamped at 0)
            split = {k: self.targets.split(v) for k, v in out.items()}
            out = {k: fc for k, (fc, _) in split.items()}
            out[LINEWIDTH] = np.clip(split["mean"][1], 0.0, None)
            out[f"{LINEWIDTH}_std"] = split["std"][1]
        if single:
            out = {k: v[0] for k, v in out.items()}
        return out

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False,
             extra_files: dict[str, str | os.PathLike] | None = None, weights_dtype: str = "float32") -> Path:
        """Write the bundle directory atomically; ``extra_files`` maps names in OPTIONAL_FILES to sources.
        ``weights_dtype``: "float32" or "float16" (half the size; the weights are cast back to float32 when
        loaded, so predictions change by the rounding of the weights only)."""
        if weights_dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {weights_dtype!r}")
        store = WEIGHT_DTYPES[weights_dtype]
        written: dict[str, Any] = {}

        def stored(module: torch.nn.Module) -> dict[str, torch.Tensor]:
            """Trained parameters in the storage precision; buffers (mask, background basis) exact."""
            params = {k for k, _ in module.named_parameters()}
            out = {k: (v.detach().to(store) if k in params else v.detach()).contiguous()
                   for k, v in module.state_dict().items()}
            bad = [k for k in params if not torch.isfinite(out[k]).all()]
            if bad:
                raise ValueError(f"weights {', '.join(bad)} do not fit in {weights_dtype} (|w| too large or "
                                 "non-finite): save with weights_dtype='float32'")
            return out

        def fill(tmp: Path) -> None:
            save_file(stored(self.autoencoder), tmp / WEIGHT_FILES[0], metadata={"format": BUNDLE_FORMAT})
            save_file(stored(self.regressor), tmp / WEIGHT_FILES[1], metadata={"format": BUNDLE_FORMAT})
            for name, src in (extra_files or {}).items():
                if name not in OPTIONAL_FILES:
                    raise ValueError(f"unexpected extra bundle file {name!r}; allowed: {OPTIONAL_FILES}")
                if Path(src).exists():
                    shutil.copyfile(src, tmp / name)
            meta = dict(self.metadata)
            meta.update({
                "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "kind": BUNDLE_KIND,
                "autoencoder": self.autoencoder.config(), "regressor": self.regressor.config(),
                "grid": self.grid.to_dict(),
                "target_standardisation": {"mean": self.target_mean.tolist(), "std": self.target_std.tolist(),
                                           "units": "N/m"},
                "weights_sha256": {n: sha256_file(tmp / n) for n in WEIGHT_FILES}, "weights_dtype": weights_dtype})
            write_metadata(tmp, meta)
            written.update(meta)

        target = write_bundle_folder(path, overwrite, fill)
        self.metadata = {k: v for k, v in written.items() if k != "weights_dtype"}  # in memory: float32
        return target


def write_metadata(folder: Path, meta: dict[str, Any]) -> None:
    """``folder``/metadata.json from ``meta`` (with ``created`` and ``library_versions`` when absent)."""
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("library_versions", library_versions())
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2, default=json_default))


def load_bundle(path: str | os.PathLike, grid: Grid | None = None, family: str | None = None) -> Bundle:
    """Load and validate a bundle directory.

    Refuses (ValueError, with the reason) a directory that is not a bundle, an unknown format version,
    weights whose SHA-256 differs from the metadata (tampered or corrupted), weights that do not fit the
    recorded architecture, a mask that does not match the recorded grid hash, a bundle on another grid than
    ``grid``, or of another family than ``family``.
    """
    p, meta = read_bundle_metadata(path)
    meta_path = p / "metadata.json"
    if meta.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{p} is not a phonon-ml model bundle (metadata format {meta.get('format')!r})")
    if meta.get("format_version") != BUNDLE_VERSION:
        raise ValueError(f"{p} has bundle format version {meta.get('format_version')}; this phonon-ml reads "
                         f"version {BUNDLE_VERSION}: retrain or upgrade phonon-ml")
    if meta.get("kind") == "ensemble":
        raise ValueError(f"{p} is an ensemble of bundles: load it with phonon_ml_core.learn.ensemble.load_model")
    if meta.get("kind") != BUNDLE_KIND:
        raise ValueError(f"{p} holds a {meta.get('kind')!r} model, expected {BUNDLE_KIND!r}")
    try:
        ae_cfg, reg_cfg, gmeta = meta["autoencoder"], meta["regressor"], meta["grid"]
        hashes, stdz = meta["weights_sha256"], meta["target_standardisation"]
    except KeyError as exc:
        raise ValueError(f"{meta_path} lacks the entry {exc}: the bundle is incomplete") from exc
    if ae_cfg.get("family") not in FAMILIES:
        raise ValueError(f"{p}: unknown model family {ae_cfg.get('family')!r}")
    if family is not None and ae_cfg["family"] != family:
        raise ValueError(f"{p} holds a {ae_cfg['family']} model, expected {family}")
    states = {}
    for name in WEIGHT_FILES:
        f = p / name
        if not f.is_file():
            raise ValueError(f"{p} lacks {name}: the bundle is incomplete")
        if sha256_file(f) != hashes.get(name):
            raise ValueError(f"{f} does not match the SHA-256 recorded in metadata.json: the weights were "
                             "modified or corrupted; retrain or restore the bundle")
        try:
            states[name] = {k: v.float() if v.is_floating_point() else v for k, v in load_file(f).items()}
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{f} is not a readable safetensors file: {exc}") from exc
    mask_t = states[WEIGHT_FILES[0]].get("mask")
    if mask_t is None:
        raise ValueError(f"{p}: the autoencoder weights lack the grid mask")
    try:
        bgrid = Grid(q=np.asarray(gmeta["q"]), energy=np.asarray(gmeta["energy"]), mask=mask_t.numpy().astype(bool),
                     ei_mev=gmeta["ei_mev"], two_theta_deg=tuple(gmeta["two_theta_deg"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{p}: invalid grid description in metadata.json: {exc}") from exc
    if bgrid.mask_hash() != gmeta.get("mask_sha256"):
        raise ValueError(f"{p}: the grid mask/axes do not match the recorded mask hash: the bundle is inconsistent")
    if grid is not None and not bgrid.same_as(grid):
        raise ValueError(f"{p} was trained on another grid (shape {bgrid.shape}, mask hash {bgrid.mask_hash()[:12]}) "
                         f"than the data (shape {grid.shape}, mask hash {grid.mask_hash()[:12]}): "
                         "preprocess the data onto the bundle's grid or use a matching bundle")
    try:
        ae = autoencoder_from_config(ae_cfg, bgrid.mask)
        ae.load_state_dict(states[WEIGHT_FILES[0]], strict=True)
        reg = regressor_from_config(reg_cfg)
        reg.load_state_dict(states[WEIGHT_FILES[1]], strict=True)
    except (RuntimeError, TypeError, KeyError) as exc:
        raise ValueError(f"{p}: the weights do not fit the recorded architecture: {exc}") from exc
    return Bundle(autoencoder=ae, regressor=reg, grid=bgrid, target_mean=np.asarray(stdz["mean"]),
                  target_std=np.asarray(stdz["std"]), metadata=meta)


def bundle_from_training(result: Any, grid: Grid, *, data: dict[str, Any] | None = None,
                         sampling_ranges: dict[str, Any] | None = None, instrument: str | None = None,
                         quantity: str = "chi''") -> Bundle:
    """A :class:`Bundle` from :class:`phonon_ml_core.learn.pipeline.TrainingResult` with full metadata: the
    result's material, experiment and named targets; ``sampling_ranges`` (default: the material's, N/m);
    ``instrument`` is ignored (the experiment records it; kept for callers of the older signature)."""
    material, experiment, targets = result.material, result.experiment, result.targets
    ranges = sampling_ranges or {n: list(r) for n, r in zip(material.names, material.sampling_ranges)}
    meta = {
        "normalization": {"method": "mean", "definition": "(x - mean) / (max - min) over valid pixels"},
        "quantity": quantity,
        "targets": list(targets.names),
        "material": material.to_dict(), "experiment": experiment.to_dict(),
        "force_constants": {"names": list(targets.constants), "units": "N/m",
                            "reference": list(material.reference_constants), "sampling_ranges": ranges},
        "instrument": experiment.instrument, "ei_mev": grid.ei_mev,
        "training": {"config": result.config.to_dict(), "seconds": result.seconds,
                     "epochs": {s: sum(1 for r in result.history if r["stage"] == s) for s in STAGES}},
        "data": data or {},
        "metrics": result.metrics,
    }
    return Bundle(result.autoencoder, result.regressor, grid, result.target_mean, result.target_std, meta)
