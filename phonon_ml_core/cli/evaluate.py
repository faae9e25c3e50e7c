"""``phonon-ml evaluate``: the study's comparison (Table 1, Fig. 2–4, S2–S5) as a self-contained HTML report."""
from __future__ import annotations

import argparse

from phonon_ml_core.cli.choices import EVALUATION_STRATEGIES


def _list(text: str | None, cast=str):
    if text is None:
        return None
    items = [t for part in text for t in str(part).split(",") if t.strip()] if isinstance(text, list) \
        else [t for t in str(text).split(",") if t.strip()]
    try:
        return tuple(cast(t.strip()) for t in items)
    except ValueError:
        raise ValueError(f"could not read the list {text!r}") from None


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="reproduce the study's comparison: models vs fit on measured spectra → report.html",
        description="Simulate (or load) a labelled training set, train every family × latent size × strategy "
                    "(sim-only, fine-tuned on the measured spectra, extended), fit every measured spectrum "
                    "(gradient and/or Nelder–Mead, γ and background slope free) as the benchmark, and write "
                    "report.html with CSV tables and PNG "
                    "figures: NMSE per model on the measured spectra (Table 1), R² on a simulated test set, "
                    "intensity and force constants vs T (Fig. 2, 3) and the latent analysis of the FCVAE "
                    "(Fig. 4, S2–S5). See docs/evaluation.md.")
    p.add_argument("--measured", nargs="*", default=None, metavar="FILE.h5",
                   help="measured spectra (default: ../shared/data/al_arcs_ei50/al_*K.h5 when present; "
                        "give the flag with no file to skip them)")
    p.add_argument("--data", help="labelled simulated set (default: generate one in the output folder)")
    p.add_argument("--output-dir", "-o", default="evaluation", help="report folder (default ./evaluation)")
    p.add_argument("--budget", choices=("quick", "full"), default="quick",
                   help="quick (1000 spectra, fcvae latent 10: minutes) or full (4000 spectra, 4 families, "
                        "latent 30/10/3, 3 strategies: about an hour on 2 CPU cores)")
    p.add_argument("--families", nargs="+", help="families, space-separated, e.g. --families fcvae cnnae "
                   "(default per budget)")
    p.add_argument("--latent-dims", nargs="+", help="latent sizes, space-separated, e.g. --latent-dims 30 10 3 "
                   "(default per budget)")
    p.add_argument("--strategies", nargs="+", help=f"subset of {','.join(EVALUATION_STRATEGIES)} (default all)")
    p.add_argument("--n-simulated", type=int, help="simulated spectra to generate (overrides the budget)")
    p.add_argument("--epochs", type=int, help="pretraining epochs (overrides the budget)")
    p.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs (overrides the budget)")
    p.add_argument("--extended-epochs", type=int, help="extended-training epochs (overrides the budget)")
    p.add_argument("--regressor-epochs", type=int, help="regressor epochs (overrides the budget)")
    p.add_argument("--physics-steps", type=int,
                   help="simulator-consistency steps on simulated spectra (overrides the budget)")
    p.add_argument("--physics-finetune-steps", type=int,
                   help="simulator-consistency steps on the measured spectra when fine-tuning (overrides the budget)")
    p.add_argument("--physics-background", action=argparse.BooleanOptionalAction, default=None,
                   help="physics stages compare with the best residual background slope added, as the fit "
                        "benchmark (default: on)")
    p.add_argument("--regressor-temperature", action=argparse.BooleanOptionalAction, default=None,
                   help="regressors also take the sample temperature as an input (default: off)")
    p.add_argument("--leave-one-out", action=argparse.BooleanOptionalAction, default=None,
                   help="also evaluate the FCVAE fine-tuned with each measured spectrum held out "
                        "(default: full budget)")
    p.add_argument("--samples", type=int, help="latent draws per measured spectrum (overrides the budget)")
    p.add_argument("--fit-methods", nargs="+", help="fit benchmarks, e.g. gradient,nelder-mead (default per budget: "
                                                    "quick gradient, full both; the first is the figures' reference)")
    p.add_argument("--fit-max-evaluations", type=int, help="simulator-call budget per benchmark fit")
    p.add_argument("--latent-threshold", type=float, default=0.01, help="KL (nats) of an active dimension")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="keep and resume training checkpoints (output/work)")
    p.add_argument("--no-models", action="store_true", help="do not save the trained bundles")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.data.fileio import check_output_dir
    from phonon_ml_core.report.evaluation import get_budget, run_evaluation

    out = check_output_dir(args.output_dir)
    fit = {}
    if args.fit_max_evaluations is not None:
        fit["max_evaluations"] = args.fit_max_evaluations
    budget = get_budget(args.budget, families=_list(args.families), latent_dims=_list(args.latent_dims, int),
                        strategies=_list(args.strategies), n_simulated=args.n_simulated, pretrain_epochs=args.epochs,
                        finetune_epochs=args.finetune_epochs, extended_epochs=args.extended_epochs,
                        regressor_epochs=args.regressor_epochs, n_samples=args.samples, fit=fit or None,
                        physics_steps=args.physics_steps, physics_finetune_steps=args.physics_finetune_steps,
                        physics_background=args.physics_background,
                        regressor_temperature=args.regressor_temperature,
                        leave_one_out=args.leave_one_out, fit_methods=_list(args.fit_methods))
    summary = run_evaluation(out, measured_files=args.measured, data=args.data, budget=budget, seed=args.seed,
                             resume=args.resume, save_models=not args.no_models, progress=not args.no_progress,
                             latent_threshold=args.latent_threshold)
    for m in summary["models"]:
        mean = m["mean_nmse"]
        r2 = " ".join(f"{k} {v:.2f}" if v is not None else f"{k} –" for k, v in m["r2"].items())
        print(f"{m['name']:>30s}: measured mean NMSE {'–' if mean is None else f'{mean:.4f}'}; test R² {r2}")
    for method, mean in summary["fit_mean_nmse_by_method"].items():
        print(f"{f'fit ({method}, γ + background)':>30s}: measured mean NMSE {'–' if mean is None else f'{mean:.4f}'}")
    for n in summary["notes"]:
        print(f"note: {n}")
    print(f"wrote {out / 'report.html'} ({summary['seconds']['total']:.0f} s)")
    return 0
