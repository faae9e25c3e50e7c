"""Seed spread of the evaluation: the same `phonon-ml evaluate` comparison repeated over several seeds.

One run of Table 1 cannot rank models whose NMSE differ by less than the run-to-run spread (training seed:
initialisation, batches, latent draws; the simulated set stays the same). This runs
:func:`phonon_ml_core.report.evaluation.run_evaluation` once per seed and prints, per model row, the mean ± standard
deviation of the mean NMSE over the seeds, how often 1XX falls strictly with temperature, and how often the
row beats each other row of the same strategy (paired by seed).

Run: ``python benchmarks/seeds.py --seeds 0,1,2,3,4 --families fcvae,fcae --latent-dims 10
--strategies fine-tuned [--budget quick] [--physics-finetune-steps N] [--fit-methods gradient]
[--data SIMULATED.h5] [--output-dir DIR]``
(default data: the budget's generated set, shared by all seeds; measured: ../shared/data when present).
"""
from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from phonon_ml_core.report.evaluation import get_budget, run_evaluation


def _list(text: str, cast=str) -> tuple:
    return tuple(cast(t.strip()) for t in text.split(",") if t.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", default="quick", choices=("quick", "full"))
    ap.add_argument("--families", default="fcvae,fcae")
    ap.add_argument("--latent-dims", default="10")
    ap.add_argument("--strategies", default="fine-tuned")
    ap.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default: the budget's)")
    ap.add_argument("--physics-finetune-steps", type=int, default=None,
                    help="simulator-consistency steps on the measured spectra (default: the budget's; 0 = the "
                         "study's protocol, regressor trained on simulated spectra only)")
    ap.add_argument("--fit-methods", default=None, help="fit benchmarks (default: the budget's), e.g. gradient")
    ap.add_argument("--data", default=None, help="labelled simulated set (default: generated once, shared)")
    ap.add_argument("--output-dir", default=None, help="folder for the per-seed reports (default: temporary)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = _list(args.seeds, int)
    if not seeds:
        ap.error("--seeds needs at least one seed, e.g. 0,1,2")
    budget = get_budget(args.budget, families=_list(args.families), latent_dims=_list(args.latent_dims, int),
                        strategies=_list(args.strategies), pretrain_epochs=args.epochs, leave_one_out=False,
                        physics_finetune_steps=args.physics_finetune_steps,
                        fit_methods=None if args.fit_methods is None else _list(args.fit_methods))
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="phonon_ml_seeds_"))
    data = args.data
    rows: dict[str, dict[int, tuple[float, bool]]] = {}
    fit = None
    t0 = time.perf_counter()
    for seed in seeds:
        out = root / f"seed{seed}"
        # the generated set is named after the seed: generate it once (seed 0) and share it across seeds
        summary = run_evaluation(out, data=data, budget=budget, seed=seed, save_models=False, progress=False)
        if data is None:
            data = summary["simulated"]["path"]
        mono = summary["monotonicity_1XX"].get("ml_all_models", {})
        for m in summary["models"]:
            mean = float("nan") if m["mean_nmse"] is None else float(m["mean_nmse"])   # None: unstable (∞)
            rows.setdefault(m["name"], {})[seed] = (mean, bool(mono.get(m["name"], False)))
        fit = summary["fit_mean_nmse"]
        print(f"seed {seed}: " + ", ".join(f"{n} {v[seed][0]:.4f}" for n, v in rows.items() if seed in v)
              + (f"; fit {fit:.4f}" if fit is not None else ""), flush=True)
    print(f"\n{len(seeds)} seeds, {time.perf_counter() - t0:.0f} s; reports in {root}"
          + (f"; fit benchmark {fit:.4f}" if fit is not None else "") + "\n")
    print("| model | mean NMSE ± std over seeds | per seed | 1XX non-increasing with T |")
    print("|---|---|---|---|")
    for name, per in rows.items():
        v = np.array([per[s][0] for s in seeds if s in per])
        print(f"| {name} | {v.mean():.4f} ± {v.std(ddof=1) if v.size > 1 else float('nan'):.4f} | "
              + " / ".join(f"{x:.4f}" for x in v) + f" | {sum(per[s][1] for s in per)} of {len(per)} |")
    print("\nPaired comparisons (same seed): how often the first row has the lower NMSE")
    for a, b in itertools.combinations(rows, 2):
        if a.rsplit("-", 1)[-1] != b.rsplit("-", 1)[-1]:
            continue
        common = [s for s in seeds if s in rows[a] and s in rows[b]]
        wins = sum(rows[a][s][0] < rows[b][s][0] for s in common)
        diff = np.array([rows[a][s][0] - rows[b][s][0] for s in common])
        print(f"  {a} vs {b}: {wins} of {len(common)}; mean difference {diff.mean():+.4f} ± "
              f"{diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float('nan'):.4f} (standard error)")


if __name__ == "__main__":
    main()
