"""Training on several processes (torch DistributedDataParallel under torchrun, gloo on CPU): gradients averaged,
rank 0 alone writes, checkpoints and resume as in one process, a bundle of the same accuracy."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import torch

from phonon_ml_core.learn import distributed
from phonon_ml_core.learn.configs import StageConfig
from phonon_ml_core.learn.loop import fit
import contextlib

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _problem():
    """A linear model and a fixed regression data set (no randomness in the loss)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    torch.manual_seed(1)
    return torch.nn.Linear(3, 1), (x, y)


def _mse(model, batch, gen):
    x, y = batch
    return {"loss": torch.mean((model(x) - y) ** 2)}


def _train(workdir: Path, interrupt_at: int | None = None, resume: bool = False) -> torch.nn.Module:
    model, data = _problem()
    cfg = StageConfig(epochs=6, batch_size=12, optimizer="sgd", momentum=0.0, schedule="constant", patience=None,
                      val_fraction=0.0, checkpoint_every=1)

    def stop(rec):
        if interrupt_at is not None and rec["epoch"] == interrupt_at:
            raise KeyboardInterrupt
    fit(model, _mse, data, None, cfg, 0.1, stage="t", seed=3, checkpoint=workdir / "t.pt", resume=resume,
        on_epoch=stop, progress=False)
    return model


def _rank_main(rank: int, port: int, workdir: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    wd = Path(workdir)
    with distributed.process_group():
        assert distributed.active() and distributed.world_size() == 2 and distributed.is_main() == (rank == 0)
        whole = _train(wd / "whole")
        with contextlib.suppress(KeyboardInterrupt):
            _train(wd / "resumed", interrupt_at=3)
        distributed.barrier()
        resumed = _train(wd / "resumed", resume=True)
        torch.save({"whole": whole.state_dict(), "resumed": resumed.state_dict()}, wd / f"rank{rank}.pt")


def test_two_processes_average_gradients_write_once_and_resume(tmp_path):
    for sub in ("whole", "resumed"):
        (tmp_path / sub).mkdir()
    torch.multiprocessing.spawn(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    (tmp_path / "single").mkdir()
    single = _train(tmp_path / "single").state_dict()
    for r in ranks:
        for key, ref in single.items():
            # full batches split in two equal halves: the averaged gradient is the one-process gradient
            torch.testing.assert_close(r["whole"][key], ref, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(r["resumed"][key], r["whole"][key], rtol=0, atol=0)  # resume is exact
    for key in single:
        assert torch.equal(ranks[0]["whole"][key], ranks[1]["whole"][key])  # one model on every process
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == ["t.pt"]  # rank 0 wrote, atomically


def test_without_torchrun_nothing_changes(monkeypatch):
    for v in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(v, raising=False)
    assert distributed.torchrun_environment() is None and not distributed.active() and distributed.is_main()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        distributed.torchrun_environment()


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not installed")
def test_torchrun_train_writes_one_bundle_as_accurate_as_one_process(tmp_path):
    from phonon_ml_core.cli import main

    data = tmp_path / "set.h5"
    assert main(["simulate", "--count", "32", "--seed", "1", "--mesh-density", "6", "--temperature-range", "100,400",
                 "--output", str(data), "--no-progress"]) == 0
    train = ["train", "--data", str(data), "--epochs", "6", "--regressor-epochs", "3", "--physics-steps", "0",
             "--latent-dim", "4", "--batch-size", "16", "--no-progress", "--seed", "2"]
    assert main([*train, "--output", str(tmp_path / "one")]) == 0
    script = tmp_path / "cli.py"
    script.write_text("import sys\nfrom phonon_ml_core.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(["torchrun", "--nproc_per_node", "2", "--master_port", str(_free_port()), str(script),
                          *train, "--output", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("→") == 1 and "on 2 processes" in run.stdout  # rank 0 alone reports
    meta = json.loads((tmp_path / "two" / "metadata.json").read_text())
    assert meta["data"]["processes"] == 2
    assert not list(tmp_path.glob("*.checkpoints")) and not list(tmp_path.glob(".two*"))

    def val_loss(bundle: str) -> float:
        rows = [json.loads(line) for line in (tmp_path / bundle / "training_log.jsonl").read_text().splitlines()]
        return min(r["val_loss"] for r in rows if r["stage"] == "pretrain")
    one, two = val_loss("one"), val_loss("two")
    assert abs(two - one) / one < 0.25, (one, two)  # tiny run; benchmarks/scaling.py measures the 5 % target
