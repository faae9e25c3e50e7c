"""Neural networks of the two-stage method: spectrum autoencoders and the force-constant regressor.

Families (Su & Li's study, see docs/training.md):

* ``fcae`` / ``fcvae``: the valid pixels (4144 on the standard grid) flattened → 400 → latent;
  decoder latent → 400 → valid pixels; tanh hidden activations, linear output.
* ``cnnae`` / ``cnnvae``: NaN → 0, conv 32/64/128 (3×3, stride 2, ReLU) → FC 200 → latent; decoder
  latent → 200 → transposed convs back to exactly (n_E, n_Q); the output is masked.

Spectra are mean-normalised χ'' (dimensionless) of shape (B, n_E, n_Q); NaN outside the mask.
The loss is the MSE over valid pixels plus ``kl_weight`` × KL(q(z|x) ‖ N(0, 1)) for the VAEs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from phonon_ml_core.learn.defaults import (  # noqa: F401  (re-exported: networks are built from these)
    DEFAULT_FAMILY,
    DEFAULT_KL_WEIGHT,
    DEFAULT_LATENT_DIM,
    FAMILIES,
    LATENT_DIM_RANGE,
    check_latent_dim,
)
from phonon_ml_core.specs import ALUMINIUM

REGRESSOR_HIDDEN: tuple[int, ...] = (100, 1000, 1000, 100)
#: Default number of regressor outputs: the default material's constants (aluminium's five).
N_FORCE_CONSTANTS = ALUMINIUM.n_constants


def _mask_tensor(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(np.array(mask, dtype=bool))
    if m.ndim != 2:
        raise ValueError(f"the mask must be 2-D (n_E, n_Q), got shape {tuple(m.shape)}")
    if not bool(m.any()):
        raise ValueError("the mask has no valid pixel")
    return m


def flatten_valid(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(..., n_E, n_Q) → (..., n_valid): the valid pixels in row-major order (boolean index)."""
    return x[..., mask]


def unflatten_valid(v: torch.Tensor, mask: torch.Tensor, fill: float = float("nan")) -> torch.Tensor:
    """(..., n_valid) → (..., n_E, n_Q) with ``fill`` outside the mask; inverse of :func:`flatten_valid`."""
    out = v.new_full((*v.shape[:-1], *mask.shape), fill)
    out[..., mask] = v
    return out


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) ‖ N(0, 1)) summed over latent dimensions, per sample (closed form), shape (B,)."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


class SpectrumAutoencoder(nn.Module):
    """Common interface of the four families.

    Subclasses implement ``_encode_features(x_clean) -> (B, hidden)`` and ``_decode_valid(z) -> (B, n_valid)``.
    """

    family: str = ""
    variational: bool = False

    def __init__(self, mask: np.ndarray | torch.Tensor, latent_dim: int = DEFAULT_LATENT_DIM,
                 kl_weight: float = DEFAULT_KL_WEIGHT, background_degree: int | None = None):
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        if not (np.isfinite(kl_weight) and kl_weight >= 0):
            raise ValueError(f"KL weight must be a non-negative number, got {kl_weight}")
        self.kl_weight = float(kl_weight)
        self.register_buffer("mask", _mask_tensor(mask), persistent=True)
        self.n_valid = int(self.mask.sum())
        self.background_degree = None if background_degree is None else int(background_degree)
        if self.background_degree is not None:
            from phonon_ml_core.preprocess.background import smooth_background_basis

            basis = smooth_background_basis(self.mask.numpy(), self.background_degree)
            self.register_buffer("background_basis", torch.as_tensor(basis, dtype=torch.float32), persistent=False)

    # -- architecture description ---------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments (mask excluded) and layer sizes."""
        cfg = {"family": self.family, "latent_dim": self.latent_dim, "kl_weight": self.kl_weight,
               "grid_shape": list(self.mask.shape), "n_valid": self.n_valid}
        if self.background_degree is not None:
            cfg["background_degree"] = self.background_degree
        return cfg

    def model_space(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the network sees and reconstructs: ``x`` (B, n_E, n_Q) itself, or, with a
        ``background_degree``, ``x`` with its least-squares polynomial background in (E, |Q|) removed and
        mean-normalised again (:func:`phonon_ml_core.preprocess.background.smooth_background_basis`), so that any smooth
        additive background of that degree leaves the latent code unchanged. Missing (non-finite) valid pixels
        enter the fit at the spectrum's mean and stay NaN in the output; NaN outside the mask."""
        x = self._check_input(x)
        if self.background_degree is None:
            return x
        b = self.background_basis.to(x.dtype)
        v = flatten_valid(x, self.mask)
        finite = torch.isfinite(v)
        fill = (torch.where(finite, v, torch.zeros_like(v)).sum(-1, keepdim=True)
                / finite.sum(-1, keepdim=True).clamp_min(1))
        v = torch.where(finite, v, fill)
        v = v - (v @ b) @ b.T
        span = (v.amax(-1, keepdim=True) - v.amin(-1, keepdim=True)).clamp_min(torch.finfo(v.dtype).tiny)
        v = (v - v.mean(-1, keepdim=True)) / span
        return unflatten_valid(torch.where(finite, v, torch.full_like(v, float("nan"))), self.mask)

    # -- encoder ------------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or tuple(x.shape[-2:]) != tuple(self.mask.shape):
            raise ValueError(f"spectra must have shape (B, {self.mask.shape[0]}, {self.mask.shape[1]}) "
                             f"(rows = energy, columns = |Q|), got {tuple(x.shape)}")
        return x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spectra (B, n_E, n_Q) → (mu (B, latent), logvar (B, latent) or None for plain autoencoders)."""
        x = self.model_space(x)
        h = self._encode_features(x)
        if self.variational:
            return self.to_mu(h), self.to_logvar(h)
        return self.to_mu(h), None

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor | None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw z = mu + exp(logvar/2) ε; mu itself for plain autoencoders."""
        if logvar is None:
            return mu
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    # -- decoder ------------------------------------------------------------------------------
    def decode_valid(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, latent) → reconstructed valid pixels (B, n_valid)."""
        return self._decode_valid(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, latent) → spectra (B, n_E, n_Q), NaN outside the mask."""
        return unflatten_valid(self._decode_valid(z), self.mask)

    # -- training objective ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                sample: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(valid-pixel reconstruction (B, n_valid), mu, logvar). VAEs sample z in training mode."""
        mu, logvar = self.encode(x)
        sample = self.training if sample is None else sample
        z = self.sample(mu, logvar, generator) if sample else mu
        return self._decode_valid(z), mu, logvar

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None,
             target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{'loss', 'mse', 'kl'}: MSE over finite valid pixels (+ kl_weight × batch-mean KL for VAEs).

        ``target`` (default ``x``) is what the reconstruction is compared with: a clean spectrum when ``x``
        is an augmented (noisy) copy, which trains a denoising extractor. Both are compared in
        :meth:`model_space`.
        """
        x = self._check_input(x)
        recon, mu, logvar = self(x, generator=generator)
        target = flatten_valid(self.model_space(x if target is None else target), self.mask)
        finite = torch.isfinite(target)
        diff = torch.where(finite, recon - torch.nan_to_num(target, nan=0.0), torch.zeros_like(recon))
        mse = diff.pow(2).sum() / finite.sum().clamp_min(1)
        if logvar is None:
            kl = mse.new_zeros(())
            return {"loss": mse, "mse": mse, "kl": kl}
        kl = kl_divergence(mu, logvar).mean()
        return {"loss": mse + self.kl_weight * kl, "mse": mse, "kl": kl}

    def _encode_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode_valid(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class FCAutoencoder(SpectrumAutoencoder):
    """Fully connected autoencoder on the masked, flattened valid pixels (tanh hidden layers)."""

    family = "fcae"

    def __init__(self, mask: np.ndarray | torch.Tensor, latent_dim: int = DEFAULT_LATENT_DIM,
                 kl_weight: float = DEFAULT_KL_WEIGHT, hidden: int = 400, background_degree: int | None = None):
        super().__init__(mask, latent_dim, kl_weight, background_degree)
        self.hidden = int(hidden)
        self.encoder = nn.Sequential(nn.Linear(self.n_valid, self.hidden), nn.Tanh())
        self.to_mu = nn.Linear(self.hidden, self.latent_dim)
        if self.variational:
            self.to_logvar = nn.Linear(self.hidden, self.latent_dim)
        self.decoder = nn.Sequential(nn.Linear(self.latent_dim, self.hidden), nn.Tanh(),
                                     nn.Linear(self.hidden, self.n_valid))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "hidden": self.hidden}

    def _encode_features(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.nan_to_num(flatten_valid(x, self.mask), nan=0.0)
        return self.encoder(v)

    def _decode_valid(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class FCVariationalAutoencoder(FCAutoencoder):
    """Variational version of :class:`FCAutoencoder` (Gaussian posterior, closed-form KL)."""

    family = "fcvae"
    variational = True


def _conv_out(n: int) -> int:
    """Output length of a 3-wide, stride-2, padding-1 convolution."""
    return (n + 2 - 3) // 2 + 1


class CNNAutoencoder(SpectrumAutoencoder):
    """Convolutional autoencoder: conv 32/64/128 (3×3, stride 2) → FC → latent; transposed convs back.

    Transposed-convolution output paddings are chosen so the decoder returns exactly (n_E, n_Q) for any grid.
    """

    family = "cnnae"

    def __init__(self, mask: np.ndarray | torch.Tensor, latent_dim: int = DEFAULT_LATENT_DIM,
                 kl_weight: float = DEFAULT_KL_WEIGHT, channels: tuple[int, ...] = (32, 64, 128),
                 hidden: int = 200, background_degree: int | None = None):
        super().__init__(mask, latent_dim, kl_weight, background_degree)
        self.channels = tuple(int(c) for c in channels)
        self.hidden = int(hidden)
        sizes = [tuple(self.mask.shape)]
        for _ in self.channels:
            sizes.append((_conv_out(sizes[-1][0]), _conv_out(sizes[-1][1])))
        self.sizes = sizes
        convs: list[nn.Module] = []
        c_in = 1
        for c in self.channels:
            convs += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*convs)
        flat = self.channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.fc_enc = nn.Sequential(nn.Flatten(), nn.Linear(flat, self.hidden), nn.ReLU())
        self.to_mu = nn.Linear(self.hidden, self.latent_dim)
        if self.variational:
            self.to_logvar = nn.Linear(self.hidden, self.latent_dim)
        self.fc_dec = nn.Sequential(nn.Linear(self.latent_dim, self.hidden), nn.ReLU(),
                                    nn.Linear(self.hidden, flat), nn.ReLU())
        deconvs: list[nn.Module] = []
        chans = list(self.channels[::-1]) + [1]
        for i in range(len(self.channels)):
            (hi, wi), (ho, wo) = sizes[-1 - i], sizes[-2 - i]
            pad = (ho - (2 * (hi - 1) + 1), wo - (2 * (wi - 1) + 1))
            deconvs.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 3, stride=2, padding=1, output_padding=pad))
            if i < len(self.channels) - 1:
                deconvs.append(nn.ReLU())
        self.deconv = nn.Sequential(*deconvs)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "channels": list(self.channels), "hidden": self.hidden}

    def _encode_features(self, x: torch.Tensor) -> torch.Tensor:
        clean = torch.where(self.mask, torch.nan_to_num(x, nan=0.0), torch.zeros_like(x))
        return self.fc_enc(self.conv(clean[:, None]))

    def _decode_valid(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc_dec(z).reshape(-1, self.channels[-1], *self.sizes[-1])
        out = self.deconv(h)[:, 0]
        return flatten_valid(out, self.mask)


class CNNVariationalAutoencoder(CNNAutoencoder):
    """Variational version of :class:`CNNAutoencoder`."""

    family = "cnnvae"
    variational = True


_CLASSES: dict[str, type[SpectrumAutoencoder]] = {
    "fcae": FCAutoencoder, "fcvae": FCVariationalAutoencoder,
    "cnnae": CNNAutoencoder, "cnnvae": CNNVariationalAutoencoder}


def build_autoencoder(family: str, mask: np.ndarray | torch.Tensor, latent_dim: int = DEFAULT_LATENT_DIM,
                      kl_weight: float = DEFAULT_KL_WEIGHT, **sizes: Any) -> SpectrumAutoencoder:
    """An autoencoder of ``family`` (fcvae, fcae, cnnae, cnnvae) for spectra on ``mask``."""
    key = str(family).lower()
    if key not in _CLASSES:
        raise ValueError(f"unknown model family {family!r}: choose one of {', '.join(FAMILIES)}")
    return _CLASSES[key](mask, latent_dim=latent_dim, kl_weight=kl_weight, **sizes)


def autoencoder_from_config(config: dict[str, Any], mask: np.ndarray | torch.Tensor) -> SpectrumAutoencoder:
    """Rebuild an autoencoder from :meth:`SpectrumAutoencoder.config` output."""
    cfg = dict(config)
    family = cfg.pop("family")
    cfg.pop("grid_shape", None)
    cfg.pop("n_valid", None)
    if "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    return build_autoencoder(family, mask, **cfg)


#: Conditions a regressor can take besides the latent code, with the (centre, scale) that standardises them.
REGRESSOR_CONDITIONS: dict[str, tuple[float, float]] = {"temperature": (350.0, 250.0)}  # K


class ForceConstantRegressor(nn.Module):
    """Latent code → named targets: latent → 100 → 1000 → 1000 → 100 → n_outputs (tanh hidden layers).

    Works on standardised targets; :class:`phonon_ml_core.learn.bundle.Bundle` converts back to N/m. With
    ``conditions=("temperature",)`` the sample temperature (K, known in every experiment) is a further input,
    standardised as (T − 350 K) / 250 K: the code then need not carry T, which the spectrum shows through the
    Debye–Waller factor, multiphonon scattering and a(T) in ways that mimic softer or stiffer constants.
    """

    def __init__(self, latent_dim: int = DEFAULT_LATENT_DIM, hidden: tuple[int, ...] = REGRESSOR_HIDDEN,
                 n_outputs: int = N_FORCE_CONSTANTS, conditions: tuple[str, ...] = ()):
        super().__init__()
        self.latent_dim = check_latent_dim(latent_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.n_outputs = int(n_outputs)
        self.conditions = tuple(str(c) for c in conditions)
        for c in self.conditions:
            if c not in REGRESSOR_CONDITIONS:
                raise ValueError(f"unknown regressor condition {c!r}: choose from {', '.join(REGRESSOR_CONDITIONS)}")
        layers: list[nn.Module] = []
        n_in = self.latent_dim + len(self.conditions)
        for h in self.hidden:
            layers += [nn.Linear(n_in, h), nn.Tanh()]
            n_in = h
        layers.append(nn.Linear(n_in, self.n_outputs))
        self.net = nn.Sequential(*layers)

    def config(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "hidden": list(self.hidden), "n_outputs": self.n_outputs,
                "conditions": list(self.conditions)}

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Latent codes (..., latent) [and the physical conditions in their units (T in K): a scalar, (B,) for
        codes (B, latent), or (..., n_conditions) broadcastable against the codes' leading dimensions]
        → standardised force constants (..., n_outputs)."""
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"latent codes have {z.shape[-1]} dimensions, the regressor expects {self.latent_dim}")
        if not self.conditions:
            return self.net(z)
        if condition is None:
            raise ValueError(f"this regressor also needs the {', '.join(self.conditions)} of each spectrum "
                             "(record it when preprocessing, or give it: --temperature on the command line, the "
                             "Temperature property in Mantid)")
        c = torch.as_tensor(condition, dtype=z.dtype)
        if len(self.conditions) == 1 and c.dim() < z.dim():   # one value per code: add the condition axis
            c = c.reshape(*c.shape, 1)
        centre = torch.as_tensor([REGRESSOR_CONDITIONS[k][0] for k in self.conditions], dtype=z.dtype)
        scale = torch.as_tensor([REGRESSOR_CONDITIONS[k][1] for k in self.conditions], dtype=z.dtype)
        c = ((c - centre) / scale).expand(*z.shape[:-1], len(self.conditions))
        return self.net(torch.cat([z, c], -1))


def regressor_from_config(config: dict[str, Any]) -> ForceConstantRegressor:
    """Rebuild a regressor from :meth:`ForceConstantRegressor.config` output."""
    return ForceConstantRegressor(latent_dim=config["latent_dim"], hidden=tuple(config["hidden"]),
                                  n_outputs=config["n_outputs"], conditions=tuple(config.get("conditions", ())))
