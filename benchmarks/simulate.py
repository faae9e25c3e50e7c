"""Simulator benchmark: spectra per second, peak memory for a data set, accuracy against a converged run.

    python benchmarks/simulate.py            # full (≈ 3 min on 2 cores)
    python benchmarks/simulate.py --quick    # smaller data set, fewer repetitions
    python benchmarks/simulate.py --device cuda
    python benchmarks/simulate.py --materials-only [--materials Al,Cu,Fe]   # per-material throughput only

Targets (issue 2): ≥ 170 spectra/s on the standard grid on this 2-core CPU (≥ 5,000/s on a GPU),
NMSE ≤ 0.005 against the converged simulator, ≤ 4 GiB peak memory for a 10,000-spectrum data set.
Issue 14: throughput per spectrum of any material within 1.5× of aluminium's on a grid of the same size.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from phonon_ml_core.data.normalization import nmse
from phonon_ml_core.simulator import PowderSimulator, SimulationSettings
from phonon_ml_core.simulator.dataset import SamplingConfig, sample_parameters
from phonon_ml_core.specs import STANDARD_EXPERIMENT, builtin_materials, get_material

DEFAULT_MATERIALS = "Al,Cu,Ni,Pb,Fe,Nb,W,V,K"


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


def material_throughput(device: str, symbols: list[str], batch: int, repeats: int, rounds: int = 3) -> None:
    """Spectra per second of each material on the standard experiment (70 × 101 grid, T = 300 K, float32),
    beside aluminium's and the ratio. Rounds alternate the materials (the best round counts) so that a busy
    machine does not favour one of them."""
    sims, fcs = {}, {}
    for sym in symbols:
        mat = get_material(sym)
        sims[sym] = PowderSimulator.from_specs(mat, STANDARD_EXPERIMENT, device=device)
        p = sample_parameters(batch * repeats, SamplingConfig(seed=1), material=mat)
        fcs[sym] = torch.tensor(p.force_constants, dtype=torch.float32, device=device)
    best = dict.fromkeys(symbols, 0.0)
    with torch.no_grad():
        for _ in range(rounds):
            for sym in symbols:
                sim, fc = sims[sym], fcs[sym]
                sim(fc[:batch], 300.0)  # warm-up (shell tensors, allocator)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for r in range(repeats):
                    sim(fc[r * batch:(r + 1) * batch], 300.0)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best[sym] = max(best[sym], repeats * batch / (time.perf_counter() - t0))
    ref = best.get("Al") or best[symbols[0]]
    print(f"throughput per material on {device} (standard 70 × 101 grid, ARCS 50 meV, batch {batch}, float32, "
          f"best of {rounds} rounds); aluminium {ref:.1f} spectra/s:")
    for sym in symbols:
        m = sims[sym].material
        print(f"  {sym:3s} ({m.lattice}, {len(sims[sym].mesh.q)} irreducible q, incoherent weight "
              f"{sims[sym].weights[1]:.3f}): {best[sym]:7.1f} spectra/s, time per spectrum / aluminium's "
              f"{ref / best[sym]:.2f}")


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
    ap.add_argument("--materials", default=DEFAULT_MATERIALS,
                    help=f"built-in materials for the per-material throughput (default {DEFAULT_MATERIALS}; "
                    f"known: {','.join(builtin_materials())})")
    ap.add_argument("--materials-only", action="store_true", help="only the per-material throughput")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    symbols = [s.strip() for s in args.materials.split(",") if s.strip()]
    material_throughput(args.device, symbols, 8 if not args.device.startswith("cuda") else 1024,
                        2 if args.quick else 4)
    if args.materials_only:
        return
    throughput(args.device, [1, 4, 8, 32, 128] if not args.device.startswith("cuda") else [256, 1024, 4096],
               2 if args.quick else 5)
    accuracy(6 if args.quick else 12)
    dataset_memory(1000 if args.quick else 10000)


if __name__ == "__main__":
    main()
