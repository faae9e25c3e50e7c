"""``phonon-ml train``: simulated (+ measured) spectra → model bundle (autoencoder + regressor)."""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

from phonon_ml_core.data.fileio import check_bundle_output
from phonon_ml_core.cli.options import add_bundle_output_options
from phonon_ml_core.learn.networks import DEFAULT_FAMILY, DEFAULT_KL_WEIGHT, DEFAULT_LATENT_DIM, FAMILIES, check_latent_dim
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.training import DEFAULT_BACKGROUND_DEGREE


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train the spectrum autoencoder and the force-constant regressor → model bundle",
        description="Pretrain an autoencoder on simulated spectra, optionally fine-tune it on measured spectra "
                    "(followed by extended training on the simulated set), then train the latent → force-constant "
                    "regressor; write a model bundle directory (docs/training.md). Defaults are the recommended "
                    "settings (Adam, cosine decay, early stopping).")
    p.add_argument("--data", required=True, help="simulated, labelled data set (HDF5, conventions §4)")
    p.add_argument("--output", required=True, help="output model bundle (a directory)")
    p.add_argument("--family", default=DEFAULT_FAMILY, choices=FAMILIES, help=f"autoencoder family (default {DEFAULT_FAMILY})")
    p.add_argument("--latent-dim", type=int, default=DEFAULT_LATENT_DIM,
                   help=f"latent dimension (the study: 3–30; default {DEFAULT_LATENT_DIM})")
    p.add_argument("--kl-weight", type=float, default=DEFAULT_KL_WEIGHT, help="KL weight of the VAEs (default 1e-6)")
    p.add_argument("--finetune", nargs="+", default=None, metavar="MEASURED.h5",
                   help="measured spectra (same grid) for fine-tuning followed by extended training")
    p.add_argument("--epochs", type=int, default=200, help="maximum pretraining epochs (default 200)")
    p.add_argument("--finetune-epochs", type=int, default=50, help="fine-tuning epochs (default 50)")
    p.add_argument("--extended-epochs", type=int, default=50, help="extended-training epochs (default 50)")
    p.add_argument("--regressor-epochs", type=int, default=300, help="maximum regressor epochs (default 300)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"),
                   help="adam (default: cosine decay, early stopping) or sgd (the study's: momentum 0.9, "
                        "lr 10 FCAE / 1 others / 0.05 regressor, constant)")
    p.add_argument("--lr", type=float, default=None, help="autoencoder learning rate (default per optimiser/family)")
    p.add_argument("--batch-size", type=int, default=64, help="autoencoder batch size (default 64)")
    p.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs (adam; default 20)")
    p.add_argument("--regressor-codes", default="sample", choices=("sample", "mean"),
                   help="train the regressor on sampled latent codes (default: more robust on measured data) or on posterior means (better simulated R²; docs/training.md)")
    p.add_argument("--augment-noise", type=float, default=0.0,
                   help="denoising training: pixel noise added to simulated inputs, in spans (e.g. 0.04; default 0)")
    p.add_argument("--augment-background", type=float, default=0.0,
                   help="random residual background slope added to simulated inputs, up to this many spans "
                        "across the energy range (e.g. 0.1; default 0)")
    p.add_argument("--on-the-fly", type=int, default=0, metavar="N",
                   help="pretrain on N fresh spectra simulated every epoch (data set's sampling ranges) "
                        "instead of the file's training split (default 0 = off)")
    p.add_argument("--background-degree", type=_degree, default=DEFAULT_BACKGROUND_DEGREE, metavar="D",
                   help="the networks see spectra with their least-squares polynomial background of total degree D "
                        f"in (E, |Q|) removed (default {DEFAULT_BACKGROUND_DEGREE}; 'none' = raw spectra)")
    p.add_argument("--no-linewidth", action="store_true",
                   help="do not predict the intrinsic linewidth γ (by default the regressor predicts it when the "
                        "data set has γ labels)")
    p.add_argument("--physics-steps", type=int, default=0, metavar="N",
                   help="steps of the regressor's simulator-consistency stage on the simulated spectra (default 0)")
    p.add_argument("--physics-finetune-steps", type=int, default=100, metavar="N",
                   help="steps of the simulator-consistency stage on the --finetune spectra (default 100; 0 = off)")
    p.add_argument("--physics-lr", type=float, default=3e-5,
                   help="learning rate of the physics stage on simulated spectra (default 3e-5)")
    p.add_argument("--physics-finetune-lr", type=float, default=3e-4,
                   help="learning rate of the physics stage on the --finetune spectra (default 3e-4)")
    p.add_argument("--physics-finetune-layers", choices=("last", "all"), default="last",
                   help="regressor layers trained on the --finetune spectra (default: the output layer only)")
    p.add_argument("--regressor-temperature", action="store_true",
                   help="the regressor also takes the sample temperature (K) as an input; predictions then need it")
    p.add_argument("--no-physics-background", dest="physics_background", action="store_false",
                   help="physics stages compare without the profiled residual background slope that the fits use")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--checkpoint-every", type=int, default=5, help="checkpoint interval in epochs (default 5)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default OUTPUT.checkpoints; removed after success)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints of an interrupted run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_bundle_output_options(p)
    return p


def _degree(text: str) -> int | None:
    """--background-degree: an integer 0–6 or 'none'."""
    if text.strip().lower() == "none":
        return None
    try:
        d = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 0–6 or 'none', got {text!r}") from None
    if not 0 <= d <= 6:
        raise argparse.ArgumentTypeError(f"the background degree must be 0–6 (or 'none'), got {d}")
    return d


def _file_info(path: str) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"path": os.path.abspath(path), "sha256": h.hexdigest(), "bytes": os.path.getsize(path)}


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.learn.bundle import bundle_from_training
    from phonon_ml_core.learn.training import PipelineConfig, StageConfig, study_stage_config, train_pipeline

    out = check_bundle_output(args.output, args.overwrite)
    check_latent_dim(args.latent_dim)
    simulated = Spectrum.from_hdf5(args.data)
    if simulated.force_constants is None:
        raise ValueError(f"{args.data} has no force_constants: the regressor needs a labelled simulated set "
                         "(`phonon-ml simulate --count N`)")
    measured = None
    if args.finetune:
        sets = [Spectrum.from_hdf5(f) for f in args.finetune]
        for f, s in zip(args.finetune, sets):
            if not s.grid.same_as(simulated.grid):
                raise ValueError(f"{f} is on a different grid than {args.data}: preprocess it onto the training grid")
            if s.n_spectra == 0:
                raise ValueError(f"{f} holds no spectrum")
        measured = Spectrum.stack(sets) if len(sets) > 1 else sets[0]
        if not measured.is_set:
            measured = Spectrum.stack([measured])
    make = study_stage_config if args.optimizer == "sgd" else StageConfig
    extra = {} if args.optimizer == "sgd" else {"patience": args.patience}
    cfg = PipelineConfig(
        family=args.family, latent_dim=args.latent_dim, kl_weight=args.kl_weight,
        pretrain=make(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      checkpoint_every=args.checkpoint_every, **extra),
        finetune_epochs=args.finetune_epochs, extended_epochs=args.extended_epochs,
        regressor=make(epochs=args.regressor_epochs, batch_size=128, checkpoint_every=args.checkpoint_every,
                       **({} if args.optimizer == "sgd" else {"patience": max(args.patience, 30)})),
        regressor_codes=args.regressor_codes, augment_noise=args.augment_noise,
        augment_background=args.augment_background, on_the_fly=args.on_the_fly,
        background_degree=args.background_degree, predict_linewidth=not args.no_linewidth,
        physics_steps=args.physics_steps, physics_finetune_steps=args.physics_finetune_steps,
        physics_lr=args.physics_lr, physics_finetune_lr=args.physics_finetune_lr,
        physics_finetune_layers=args.physics_finetune_layers,
        physics_background=args.physics_background, regressor_temperature=args.regressor_temperature,
        seed=args.seed)
    ckdir = Path(args.checkpoint_dir) if args.checkpoint_dir else out.with_name(out.name + ".checkpoints")
    if args.resume and not ckdir.exists():
        print(f"no checkpoints in {ckdir}: starting from scratch")
    if not args.resume and ckdir.exists():
        for f in ckdir.glob("*.pt"):
            f.unlink()
    result = train_pipeline(simulated, cfg, measured=measured, workdir=ckdir, resume=args.resume,
                            progress=not args.no_progress)
    data = {"simulated": {**_file_info(args.data), "n_spectra": simulated.n_spectra,
                          "metadata": simulated.metadata},
            "finetune": [_file_info(f) for f in (args.finetune or [])]}
    ranges = simulated.metadata.get("sampling_ranges") or simulated.metadata.get("sampling")
    bundle = bundle_from_training(result, simulated.grid, data=data,
                                  sampling_ranges=ranges if isinstance(ranges, dict) else None,
                                  instrument=simulated.instrument or "ARCS", quantity=simulated.quantity)
    bundle.save(out, overwrite=args.overwrite, weights_dtype=args.weights_dtype,
                extra_files={"training_log.jsonl": ckdir / "training_log.jsonl", "loss_curve.png": ckdir / "loss_curve.png"})
    shutil.rmtree(ckdir, ignore_errors=True)
    m = result.metrics.get("validation") or result.metrics.get("train", {})
    r2 = ", ".join(f"{k} {v:.3f}" for k, v in m.get("r2", {}).items())
    print(f"{args.data} → {out}: {cfg.family}, latent {cfg.latent_dim}; "
          f"{'validation' if 'validation' in result.metrics else 'train'} R² {r2}; "
          f"reconstruction MSE {m.get('reconstruction_mse', float('nan')):.3g}")
    return 0
