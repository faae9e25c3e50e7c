"""What the device tests (tests/test_device*.py) share: whether CUDA is here, the skip marks, and the small data
set simulated on the GPU by ``phonon-ml simulate --device cuda`` (a fixture, skipped without CUDA)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from phonon_ml_core.cli import main

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")
without_cuda = pytest.mark.skipif(CUDA, reason="this machine has CUDA")

#: The CUDA set's ``phonon-ml simulate`` arguments: 24 aluminium spectra, coarse mesh (a few seconds on a GPU).
CUDA_SET_ARGS = ("simulate", "--count", "24", "--mesh-density", "6", "--no-progress", "--device", "cuda")


@pytest.fixture(name="cuda_set")
def cuda_set_fixture(tmp_path: Path) -> Path:
    """``tmp_path/set.h5``: the small data set simulated on the GPU through the command line (exit status 0)."""
    if not CUDA:
        pytest.skip("no CUDA device on this machine")
    data = tmp_path / "set.h5"
    assert main([*CUDA_SET_ARGS, "--output", str(data)]) == 0
    return data
