"""The training log (JSON lines) and the loss-curve figure of a run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.learn.configs import STAGES


def write_log(history: list[dict[str, Any]], path: Path) -> None:
    """Training log, one JSON object per epoch (written atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Loss curves per stage (training solid, validation dashed), log scale, PNG via Agg."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if any(r["stage"] == s for r in history)]
    fig, axes = plt.subplots(1, max(len(stages), 1), figsize=(4 * max(len(stages), 1), 3.2), squeeze=False)
    for ax, s in zip(axes[0], stages):
        rows = [r for r in history if r["stage"] == s]
        ep = [r["epoch"] for r in rows]
        ax.plot(ep, [r["train_loss"] for r in rows], label="train")
        if any("val_loss" in r for r in rows):
            ax.plot(ep, [r.get("val_loss", np.nan) for r in rows], "--", label="validation")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(s)
        ax.legend()
    axes[0][0].set_ylabel("loss (AE: MSE + KL·w; regressor: MSE of z-scores)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

