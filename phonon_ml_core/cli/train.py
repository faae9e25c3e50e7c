"""``phonon-ml train``: simulated (+ measured) spectra → model bundle (autoencoder + regressor).

A thin front end of :func:`phonon_ml_core.learn.setup.train_to_bundle` (shared with the Mantid algorithm
TrainPhononVAE); the defaults come from :func:`phonon_ml_core.learn.setup.training_defaults`. The material and
experiment come from the data set. The help's defaults are the torch-free copy in :mod:`phonon_ml_core.cli.choices`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from phonon_ml_core.cli.choices import FAMILIES, TRAINABLE_LAYERS, TRAINING_DEFAULTS
from phonon_ml_core.cli.options import add_bundle_output_options


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = TRAINING_DEFAULTS
    p = subparsers.add_parser(
        "train", help="train the spectrum autoencoder and the force-constant regressor → model bundle",
        description="Pretrain an autoencoder on simulated spectra, optionally fine-tune it on measured spectra "
                    "(followed by extended training on the simulated set), then train the latent → force-constant "
                    "regressor; write a model bundle directory (docs/training.md). Defaults are the recommended "
                    "settings (Adam, cosine decay, early stopping).")
    p.add_argument("--data", required=True, nargs="+", metavar="SET.h5",
                   help="simulated, labelled data set (HDF5, conventions §4); several sets (other materials, "
                        "instruments, Ei) train one shared feature extractor and one regressor per set: OUTPUT is "
                        "then a folder of bundles, one per set, with mixed.json (docs/scaling.md)")
    p.add_argument("--output", required=True, help="output model bundle (a directory)")
    p.add_argument("--family", default=d["family"], choices=FAMILIES,
                   help=f"autoencoder family (default {d['family']})")
    p.add_argument("--latent-dim", type=int, default=d["latent_dim"],
                   help=f"latent dimension (the study: 3–30; default {d['latent_dim']})")
    p.add_argument("--kl-weight", type=float, default=d["kl_weight"],
                   help=f"KL weight of the VAEs (default {d['kl_weight']:g})")
    p.add_argument("--finetune", nargs="+", default=None, metavar="MEASURED.h5",
                   help="measured spectra on the data set's grid (a few missing edge pixels are filled) for "
                        "fine-tuning followed by extended training")
    p.add_argument("--epochs", type=int, default=d["epochs"],
                   help=f"maximum pretraining epochs (default {d['epochs']})")
    p.add_argument("--finetune-epochs", type=int, default=d["finetune_epochs"],
                   help=f"fine-tuning epochs (default {d['finetune_epochs']})")
    p.add_argument("--extended-epochs", type=int, default=d["extended_epochs"],
                   help=f"extended-training epochs (default {d['extended_epochs']})")
    p.add_argument("--regressor-epochs", type=int, default=d["regressor_epochs"],
                   help=f"maximum regressor epochs (default {d['regressor_epochs']})")
    p.add_argument("--optimizer", default=d["optimizer"], choices=("adam", "sgd"),
                   help="adam (default: cosine decay, early stopping) or sgd (the study's: momentum 0.9, "
                        "lr 10 FCAE / 1 others / 0.05 regressor, constant)")
    p.add_argument("--lr", type=float, default=None, help="autoencoder learning rate (default per optimiser/family)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help=f"autoencoder batch size (default {d['batch_size']})")
    p.add_argument("--patience", type=int, default=d["patience"],
                   help=f"early-stopping patience in epochs on the validation loss (adam; default {d['patience']})")
    p.add_argument("--regressor-codes", default=d["regressor_codes"], choices=("sample", "mean"),
                   help="train the regressor on sampled latent codes (default: more robust on measured data) or on "
                        "posterior means (better simulated R²; docs/training.md)")
    p.add_argument("--augment-noise", type=float, default=d["augment_noise"],
                   help="denoising training: pixel noise added to simulated inputs, in spans (e.g. 0.04; default 0)")
    p.add_argument("--augment-background", type=float, default=d["augment_background"],
                   help="random residual background slope added to simulated inputs, up to this many spans "
                        "across the energy range (e.g. 0.1; default 0)")
    p.add_argument("--on-the-fly", type=int, default=d["on_the_fly"], metavar="N",
                   help="pretrain on N fresh spectra simulated every epoch (data set's sampling ranges) "
                        "instead of the file's training split (default 0 = off)")
    p.add_argument("--background-degree", type=_degree, default=d["background_degree"], metavar="D",
                   help="the networks see spectra with their least-squares polynomial background of total degree D "
                        f"in (E, |Q|) removed (default {d['background_degree']}; 'none' = raw spectra)")
    p.add_argument("--no-linewidth", dest="predict_linewidth", action="store_false",
                   help="do not predict the intrinsic linewidth γ (by default the regressor predicts it when the "
                        "data set has γ labels)")
    p.add_argument("--physics-steps", type=int, default=d["physics_steps"], metavar="N",
                   help="steps of the regressor's simulator-consistency stage on the simulated spectra "
                        f"(default {d['physics_steps']})")
    p.add_argument("--physics-finetune-steps", type=int, default=d["physics_finetune_steps"], metavar="N",
                   help="steps of the simulator-consistency stage on the --finetune spectra "
                        f"(default {d['physics_finetune_steps']}; 0 = off)")
    p.add_argument("--physics-lr", type=float, default=d["physics_lr"],
                   help=f"learning rate of the physics stage on simulated spectra (default {d['physics_lr']:g})")
    p.add_argument("--physics-finetune-lr", type=float, default=d["physics_finetune_lr"],
                   help="learning rate of the physics stage on the --finetune spectra "
                        f"(default {d['physics_finetune_lr']:g})")
    p.add_argument("--physics-finetune-layers", choices=TRAINABLE_LAYERS, default=d["physics_finetune_layers"],
                   help="regressor layers trained on the --finetune spectra (default: the output layer only; "
                        "bias: its bias only)")
    p.add_argument("--regressor-temperature", action="store_true",
                   help="the regressor also takes the sample temperature (K) as an input; predictions then need it")
    p.add_argument("--temperature-invariance", type=_non_negative, metavar="WEIGHT",
                   default=d["temperature_invariance"],
                   help="weight of the temperature-invariance penalty in the physics stage on simulated spectra "
                        "(each spectrum's constants simulated again at a second temperature, the difference of the "
                        "predictions penalised; models/README.md; default 0 = off)")
    p.add_argument("--latent-temperature-invariance", type=_non_negative, metavar="WEIGHT",
                   default=d["latent_temperature_invariance"],
                   help="weight of the temperature-invariance penalty on the latent code during pretraining (each "
                        "spectrum's constants and γ simulated again at a second temperature, the change of the "
                        "latent mean penalised relative to the latent spread; docs/training.md; default 0 = off)")
    p.add_argument("--no-physics-background", dest="physics_background", action="store_false",
                   help="physics stages compare without the profiled residual background slope that the fits use")
    p.add_argument("--seed", type=int, default=d["seed"], help=f"random seed (default {d['seed']})")
    p.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"],
                   help=f"checkpoint interval in epochs (default {d['checkpoint_every']})")
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default OUTPUT.checkpoints; removed after success)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints of an interrupted run")
    p.add_argument("--device", default="cpu",
                   help="torch device of the autoencoder stages, e.g. cuda (default cpu; under torchrun each process "
                        "takes the GPU of its LOCAL_RANK; docs/scaling.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_bundle_output_options(p)
    return p


def _non_negative(text: str) -> float:
    """A float ≥ 0 (a penalty weight)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"the weight must be ≥ 0 (0 = off), got {v:g}")
    return v


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


#: Fewest labelled spectra a training set needs (an autoencoder and a regressor cannot be fitted to fewer).
MIN_TRAINING_SPECTRA = 2


def check_training_set_size(path: str) -> int:
    """The number of spectra in the data set ``path`` (read from the HDF5 shape, no data loaded); ValueError when
    it is too small to train on."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            shape = f["intensity"].shape if "intensity" in f else None
    except OSError:
        return -1  # not our HDF5 layout: the reader gives the precise error
    if shape is None:
        return -1
    n = shape[0] if len(shape) == 3 else 1
    if n < MIN_TRAINING_SPECTRA:
        raise ValueError(f"--data {path} holds {n} spectrum{'s' if n != 1 else ''}: training needs at least "
                         f"{MIN_TRAINING_SPECTRA} (hundreds in practice); simulate a set with "
                         "`phonon-ml simulate --count N --output SET.h5`")
    return n


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.learn.bundle_metadata import file_info
    from phonon_ml_core.learn.distributed import torchrun_environment
    from phonon_ml_core.learn.setup import train_to_bundle, training_defaults
    from phonon_ml_core.readers import read_spectrum

    out = Path(args.output)
    for path in args.data:
        check_training_set_size(path)
    ckdir = Path(args.checkpoint_dir) if args.checkpoint_dir else out.with_name(out.name + ".checkpoints")
    if args.resume and not ckdir.exists():
        print(f"no checkpoints in {ckdir}: starting from scratch")
    options = {k: v for k, v in vars(args).items() if k in training_defaults()}
    if len(args.data) > 1:
        return _run_mixed(args, options, ckdir)
    files = list(args.finetune or [])
    bundle, result = train_to_bundle(args.data[0], out, options, [read_spectrum(f) for f in files], files,
                                     [file_info(f) for f in files], overwrite=args.overwrite,
                                     weights_dtype=args.weights_dtype, checkpoint_dir=ckdir, resume=args.resume,
                                     progress=not args.no_progress, device=args.device)
    env = torchrun_environment()
    if env is not None and env["rank"] != 0:
        return 0  # under torchrun, rank 0 reports (and wrote the bundle)
    m = result.metrics.get("validation") or result.metrics.get("train", {})
    r2 = ", ".join(f"{k} {v:.3f}" for k, v in m.get("r2", {}).items() if v is not None)
    cfg = result.config
    print(f"{args.data[0]} → {out}: {bundle.material.name} ({', '.join(bundle.target_names)}), "
          f"{bundle.experiment.instrument} Ei = {bundle.experiment.ei_mev:g} meV; {cfg.family}, latent "
          f"{cfg.latent_dim}; {'validation' if 'validation' in result.metrics else 'train'} R² {r2}; "
          f"reconstruction MSE {m.get('reconstruction_mse', float('nan')):.3g}; "
          f"{sum(result.seconds.values()):.0f} s" + (f" on {env['world_size']} processes" if env else ""))
    return 0


def _run_mixed(args: argparse.Namespace, options: dict, ckdir: Path) -> int:
    """Several data sets: one shared feature extractor, one regressor (bundle) per set (learn.mixed)."""
    from phonon_ml_core.learn.distributed import torchrun_environment
    from phonon_ml_core.learn.mixed import MANIFEST, train_mixed

    if args.finetune:
        raise ValueError("--finetune adapts a bundle of one material: train the sets together without it, then "
                         "fine-tune a member bundle (phonon-ml finetune --model OUTPUT/MEMBER)")
    bundles, manifest = train_mixed(args.data, args.output, options, overwrite=args.overwrite,
                                    weights_dtype=args.weights_dtype, checkpoint_dir=ckdir, resume=args.resume,
                                    progress=not args.no_progress, device=args.device)
    env = torchrun_environment()
    if env is not None and env["rank"] != 0:
        return 0
    for member in manifest["members"]:
        print(f"  {Path(args.output) / member['bundle']}: {member['material']} on {member['experiment']}")
    print(f"{', '.join(args.data)} → {args.output}: one feature extractor on {manifest['extractor']['n_spectra']} "
          f"spectra ({manifest['extractor']['common_valid_pixels']} shared pixels), {len(bundles)} regressors; "
          f"see {Path(args.output) / MANIFEST}")
    return 0
