"""Simulator benchmark: spectra per second, peak memory for a data set, accuracy against a converged run.

    python benchmarks/simulate.py            # full (≈ 3 min on 2 cores)
    python benchmarks/simulate.py --quick    # smaller data set, fewer repetitions
    python benchmarks/simulate.py --device cuda

Targets (issue 2): ≥ 170 spectra/s on the standard grid on this 2-core CPU (≥ 5,000/s on a GPU),
NMSE ≤ 0.005 against the converged simulator, ≤ 4 GiB peak memory for a 10,000-spectrum data set.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from phonon_ml_core.simulator.dataset import SamplingConfig, sample_parameters
from phonon_ml_core.data.normalization import nmse
from phonon_ml_core.simulator import PowderSimulator, SimulationSettings


def throughput(device: str, batch_sizes: list[int], repeats: int) -> None:
    sim = PowderSimulator(device=device)
    params = sample_parameters(max(batch_sizes) * repeats, SamplingConfig(seed=1))
    fc = torch.tensor(params.force_constants, dtype=torch.float32, device=device)
    print(f"throughput on {device} (standard 70 × 101 grid, T = 300 K, float32, mesh_density "
          f"{sim.settings.mesh_density}, {len(sim.mesh.q)} irreducible q):")
    with torch.no_grad():
        for b in batch_sizes:
            sim(fc[:b], 300.0)  # warm-up (shell tensors, allocator)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for r in range(repeats):
                sim(fc[r * b:(r + 1) * b], 300.0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"  batch {b:5d}: {repeats * b / dt:8.1f} spectra/s")


def accuracy(n_sets: int) -> None:
    params = sample_parameters(n_sets, SamplingConfig(seed=2))
    temps = np.array([50.0, 300.0, 640.0])[np.arange(n_sets) % 3]
    fc = torch.tensor(params.force_constants, dtype=torch.float64)
    with torch.no_grad():
        conv = PowderSimulator(settings=SimulationSettings(mesh_density=48), dtype=torch.float64)(fc, temps).numpy()
        sphere = PowderSimulator(settings=SimulationSettings(method="sphere", n_per_bin=4096),
                                 dtype=torch.float64)(fc, temps).numpy()
        mask = PowderSimulator().grid.mask
        print(f"accuracy against the converged simulator (mesh_density 48), {n_sets} random sets at 50/300/640 K:")
        print(f"  independent 'sphere' quadrature (4096 points per |Q| bin): mean NMSE "
              f"{np.mean(nmse(conv, sphere, mask)):.5f}")
        for dens in (12, 16, 20, 24):
            y = PowderSimulator(settings=SimulationSettings(mesh_density=dens))(fc.float(), temps).numpy()
            e = nmse(conv, y, mask)
            print(f"  mesh_density {dens:3d} (float32): mean NMSE {np.mean(e):.5f}, max {np.max(e):.5f}")


def dataset_memory(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "set.h5")
        code = ("import resource,time; from phonon_ml_core.simulator.dataset import generate_dataset; t=time.time(); "
                f"import torch; torch.set_num_threads({torch.get_num_threads()}); "
                f"generate_dataset({out!r}, {n}, progress=False); "
                "print(time.time()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        secs, kib = res.stdout.split()[-2:]
        print(f"data set of {n} spectra: {float(secs):.1f} s wall ({n / float(secs):.0f} spectra/s including "
              f"set-up and HDF5 writing), peak memory {int(kib) / 2**20:.2f} GiB, file "
              f"{os.path.getsize(out) / 2**20:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    throughput(args.device, [1, 4, 8, 32, 128] if not args.device.startswith("cuda") else [256, 1024, 4096],
               2 if args.quick else 5)
    accuracy(6 if args.quick else 12)
    dataset_memory(1000 if args.quick else 10000)


if __name__ == "__main__":
    main()
