"""The network families and their default sizes as plain data (no torch), so that ``phonon-ml train --help`` and
the Mantid algorithm's PyInit read them without importing torch; :mod:`.networks` builds the networks from them."""
from __future__ import annotations

#: Autoencoder families (Su & Li's study, docs/training.md), the default first.
FAMILIES: tuple[str, ...] = ("fcvae", "fcae", "cnnae", "cnnvae")
DEFAULT_FAMILY = FAMILIES[0]
#: Default latent dimension and KL weight of the VAEs.
DEFAULT_LATENT_DIM = 30
DEFAULT_KL_WEIGHT = 1e-6
#: The study's range of latent dimensions (larger values are allowed).
LATENT_DIM_RANGE: tuple[int, int] = (3, 30)
#: Latent-space analysis (``phonon-ml latent-analysis``, report.latent): mean KL (nats) above which a dimension is
#: active, and the step (latent units) along each dimension for the decoder sensitivity.
LATENT_ACTIVE_THRESHOLD = 0.01
LATENT_SENSITIVITY_DELTA = 0.5

#: The regressor layers a physics stage may train: all of them, the output layer ("last"), or the output layer's
#: bias only ("bias": a constant offset of every standardised output, which keeps the trend in T of the predictions).
TRAINABLE_LAYERS = ("last", "all", "bias")


def check_latent_dim(latent_dim: int) -> int:
    """Validate a latent dimension (an integer ≥ 1; the study used 3–30)."""
    if isinstance(latent_dim, bool) or int(latent_dim) != latent_dim or latent_dim < 1:
        raise ValueError(f"latent dimension must be a positive integer (the study used "
                         f"{LATENT_DIM_RANGE[0]}–{LATENT_DIM_RANGE[1]}), got {latent_dim!r}")
    return int(latent_dim)
