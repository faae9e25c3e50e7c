"""Autoencoder families and regressor: shapes, masks, KL term, latent-size validation (no simulator)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phonon_ml_core.specs.grid import Grid, standard_grid
from phonon_ml_core.learn.networks import (FAMILIES, ForceConstantRegressor, autoencoder_from_config, build_autoencoder,
                                   flatten_valid, kl_divergence, unflatten_valid)


def _spectra(grid: Grid, n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *grid.shape), generator=g) * 0.1
    return torch.where(torch.as_tensor(np.array(grid.mask)), x, torch.full_like(x, float("nan")))


def _small_grid() -> Grid:
    q = np.linspace(0.5, 5.0, 23)
    e = np.linspace(5.0, 30.0, 17)
    return Grid.from_axes(q, e, ei_mev=40.0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("latent", [3, 30])
def test_shapes_and_masks_standard_grid(family: str, latent: int) -> None:
    grid = standard_grid()
    model = build_autoencoder(family, grid.mask, latent_dim=latent).eval()
    x = _spectra(grid)
    mu, logvar = model.encode(x)
    assert mu.shape == (3, latent)
    assert (logvar is not None) == family.endswith("vae")
    if logvar is not None:
        assert logvar.shape == (3, latent)
    out = model.decode(mu)
    assert out.shape == (3, 70, 101)
    mask = torch.as_tensor(np.array(grid.mask))
    assert torch.isnan(out[:, ~mask]).all() and torch.isfinite(out[:, mask]).all()
    assert model.n_valid == 4144
    recon, _, _ = model(x)
    assert recon.shape == (3, 4144)
    assert torch.isfinite(model.loss(x)["loss"])


@pytest.mark.parametrize("family", FAMILIES)
def test_other_grid_and_odd_sizes(family: str) -> None:
    grid = _small_grid()
    model = build_autoencoder(family, grid.mask, latent_dim=5).eval()
    x = _spectra(grid, 2)
    out = model.decode(model.encode(x)[0])
    assert out.shape == (2, *grid.shape)
    assert torch.isfinite(out[:, torch.as_tensor(np.array(grid.mask))]).all()
    rebuilt = autoencoder_from_config(model.config(), grid.mask)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.encode(x)[0], model.encode(x)[0])


def test_flatten_roundtrip_any_mask() -> None:
    rng = np.random.default_rng(1)
    mask = torch.as_tensor(rng.random((7, 9)) > 0.4)
    x = torch.randn(4, 7, 9)
    v = flatten_valid(x, mask)
    assert v.shape == (4, int(mask.sum()))
    back = unflatten_valid(v, mask)
    assert torch.equal(back[:, mask], x[:, mask]) and torch.isnan(back[:, ~mask]).all()


def test_nan_inputs_are_cleaned() -> None:
    grid = standard_grid()
    for family in ("fcae", "cnnae"):
        model = build_autoencoder(family, grid.mask, latent_dim=4).eval()
        x = _spectra(grid, 2)
        x[0, 30, 40] = float("nan")  # a NaN inside the mask, too
        assert torch.isfinite(model.encode(x)[0]).all()
        assert torch.isfinite(model.loss(x)["loss"])


def test_kl_closed_form() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 6), torch.randn(4, 6) * 0.5
    var = logvar.exp()
    # KL(N(mu, var) || N(0, 1)) per dimension: 0.5 (var + mu² − 1 − ln var)
    expected = 0.5 * (var + mu ** 2 - 1 - logvar).sum(-1)
    assert torch.allclose(kl_divergence(mu, logvar), expected, atol=1e-6)
    assert torch.allclose(kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))
    # Monte-Carlo check of the same quantity for one dimension
    d = torch.distributions
    q, p = d.Normal(mu[0], (0.5 * logvar[0]).exp()), d.Normal(torch.zeros(6), torch.ones(6))
    assert math.isclose(float(d.kl_divergence(q, p).sum()), float(kl_divergence(mu[:1], logvar[:1])), rel_tol=1e-5)


def test_vae_loss_includes_weighted_kl() -> None:
    grid = standard_grid()
    model = build_autoencoder("fcvae", grid.mask, latent_dim=3, kl_weight=0.5).eval()
    x = _spectra(grid, 2)
    out = model.loss(x)
    assert torch.allclose(out["loss"], out["mse"] + 0.5 * out["kl"])
    mu, logvar = model.encode(x)
    assert torch.allclose(out["kl"], kl_divergence(mu, logvar).mean())


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_latent_dim_validation(bad) -> None:
    with pytest.raises(ValueError, match="latent dimension"):
        build_autoencoder("fcvae", standard_grid().mask, latent_dim=bad)
    with pytest.raises(ValueError, match="latent dimension"):
        ForceConstantRegressor(bad)


def test_unknown_family_and_bad_shape() -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        build_autoencoder("transformer", standard_grid().mask)
    model = build_autoencoder("fcae", standard_grid().mask, latent_dim=3)
    with pytest.raises(ValueError, match="rows = energy"):
        model.encode(torch.zeros(2, 101, 70))


def test_regressor_shapes() -> None:
    reg = ForceConstantRegressor(7)
    assert reg(torch.zeros(11, 7)).shape == (11, 5)
    assert reg(torch.zeros(3, 4, 7)).shape == (3, 4, 5)
    sizes = [m.out_features for m in reg.net if isinstance(m, torch.nn.Linear)]
    assert sizes == [100, 1000, 1000, 100, 5]
