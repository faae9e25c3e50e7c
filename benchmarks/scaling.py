"""Scale-out figures (issue 17, docs/scaling.md): the Dask executor against the serial run, and torchrun training
on several CPU processes against one process.

1. Data set: ``phonon-ml simulate --count N`` serially (one process, torch's default threads = the machine's
   cores, or ``--serial-threads``), serially with one torch thread (``OMP_NUM_THREADS=1``), and with
   ``--executor dask`` under the same thread setting (its default: a LocalCluster of ONE worker computing with the
   serial run's torch threads; ``--workers N`` for N workers sharing them); wall times, their ratios and whether
   the files are identical (every dataset, bit for bit). Target: on two cores, Dask no slower than the default
   serial run at N = 100,000, and identical to it (PASS/MISS printed).
2. Training: ``phonon-ml train`` on one process and under ``torchrun --nproc_per_node P`` (gloo, CPU) on the same
   set and seed; wall times and the best validation losses of the autoencoder and the regressor. Target: the
   P-process validation loss within 5 % of the one-process loss (PASS/MISS printed). torchrun gives each process
   one torch thread (it sets OMP_NUM_THREADS=1); the one-process run uses torch's default threads, or
   ``--serial-threads``. The thread settings are printed with the figures.
3. With ``--device cuda`` (when a GPU is present): simulator throughput and training time on the GPU beside the CPU.

Run: ``python benchmarks/scaling.py [--count 100000] [--train-count 4000] [--epochs 60] [--processes 2]
[--serial-threads T] [--workers N] [--skip-one-thread] [--skip-dask] [--skip-train] [--device cuda]
[--workdir DIR]``. The machine's load changes
absolute times: compare the ratios printed in one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from phonon_ml_core.cli import main; sys.exit(main())"]


def _env(threads: int | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def default_threads() -> int:
    """torch's intra-op threads in a child process without OMP_NUM_THREADS set by us (the machine's default)."""
    return int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads())


def _run(cmd: list[str], threads: int | None = None, **kw) -> float:
    """Wall time (s) of a command (``threads``: its OMP_NUM_THREADS); its output is shown only when it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} … failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - t0


def same_file(a: Path, b: Path) -> tuple[bool, float]:
    """(every dataset equal bit for bit, the largest |difference| of the intensities)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        same = sorted(fa) == sorted(fb) and all(
            np.array_equal(fa[k][()], fb[k][()], equal_nan=fa[k].dtype.kind == "f") for k in fa)
        diff = float(np.nanmax(np.abs(fa["intensity"][()] - fb["intensity"][()])))
    return same, diff


def dask_vs_serial(work: Path, count: int, workers: int | None, batch_size: int, serial_threads: int | None,
                   one_thread: bool = True) -> dict:
    """The same data set serially and with ``--executor dask`` (default: a LocalCluster of one worker computing
    with the serial run's threads; ``workers``: that many), both under the same OMP_NUM_THREADS
    (``serial_threads``, default torch's); optionally also serially with one thread."""
    common = ["simulate", "--count", str(count), "--seed", "11", "--temperature-range", "20,600",
              "--batch-size", str(batch_size), "--no-progress"]
    serial, dask, one = work / "serial.h5", work / "dask.h5", work / "serial_1thread.h5"
    t_serial = _run([*CLI, *common, "--output", str(serial)], threads=serial_threads)
    extra = [] if workers is None else ["--workers", str(workers)]
    t_dask = _run([*CLI, *common, "--output", str(dask), "--executor", "dask", *extra], threads=serial_threads)
    same, diff = same_file(serial, dask)
    threads = serial_threads or default_threads()
    r = {"count": count, "workers": workers or 1, "serial_threads": threads,
         "dask_threads_per_worker": max(1, threads // (workers or 1)), "serial_s": t_serial, "dask_s": t_dask,
         "dask_over_serial": t_dask / t_serial, "identical": same, "max_abs_difference": diff,
         "pass": bool(same and t_dask <= t_serial)}
    if one_thread and threads != 1:
        t_one = _run([*CLI, *common, "--output", str(one)], threads=1)
        r.update(serial_1thread_s=t_one, dask_over_serial_1thread=t_dask / t_one,
                 identical_to_one_thread_serial=same_file(one, dask)[0])
    return r


def print_dask(r: dict) -> None:
    one = (f"; serial (1 thread) {r['serial_1thread_s']:.1f} s, Dask/serial-1-thread "
           f"{r['dask_over_serial_1thread']:.2f}, identical to it: "
           f"{'yes' if r['identical_to_one_thread_serial'] else 'no'}") if "serial_1thread_s" in r else ""
    print(f"data set, {r['count']} spectra: serial ({r['serial_threads']} torch threads) {r['serial_s']:.1f} s, "
          f"Dask ({r['workers']} worker{'s' if r['workers'] > 1 else ''} × {r['dask_threads_per_worker']} torch "
          f"thread{'s' if r['dask_threads_per_worker'] > 1 else ''}) {r['dask_s']:.1f} s; Dask/serial "
          f"{r['dask_over_serial']:.3f} (target ≤ 1); identical to the serial file: "
          f"{'yes' if r['identical'] else 'no'} (max |Δ| {r['max_abs_difference']:.2g}) — "
          f"{'PASS' if r['pass'] else 'MISS'}{one}")


def _losses(bundle: Path) -> dict[str, float]:
    rows = [json.loads(x) for x in (bundle / "training_log.jsonl").read_text().splitlines()]
    out = {}
    for stage in ("pretrain", "regressor"):
        vals = [r["val_loss"] for r in rows if r["stage"] == stage and r.get("val_loss") is not None]
        out[stage] = min(vals) if vals else float("nan")
    meta = json.loads((bundle / "metadata.json").read_text())
    r2 = (meta.get("metrics", {}).get("validation") or {}).get("r2", {})
    out["r2"] = r2
    return out


def torchrun_vs_one(work: Path, count: int, epochs: int, processes: int, device: str,
                    serial_threads: int | None) -> dict:
    data = work / "train_set.h5"
    _run([*CLI, "simulate", "--count", str(count), "--seed", "5", "--temperature-range", "20,600",
          "--output", str(data), "--no-progress", "--executor", "dask"])
    train = ["train", "--data", str(data), "--epochs", str(epochs), "--regressor-epochs", str(epochs),
             "--physics-steps", "0", "--no-progress", "--seed", "3", "--device", device]
    t_one = _run([*CLI, *train, "--output", str(work / "one")], threads=serial_threads)
    script = work / "cli.py"
    script.write_text("import sys\nfrom phonon_ml_core.cli import main\nsys.exit(main())\n")
    t_many = _run(["torchrun", "--standalone", "--nproc_per_node", str(processes), str(script), *train,
                   "--output", str(work / "many")])
    one, many = _losses(work / "one"), _losses(work / "many")
    rel = {k: (many[k] - one[k]) / one[k] for k in ("pretrain", "regressor")}
    return {"count": count, "epochs": epochs, "processes": processes, "device": device, "one_process_s": t_one,
            "one_process_threads": serial_threads or default_threads(), "torchrun_threads_per_process": 1,
            "torchrun_s": t_many, "val_loss_one": one, "val_loss_torchrun": many, "relative_difference": rel,
            "pass": bool(all(abs(v) <= 0.05 for v in rel.values()))}


def gpu_throughput(count: int, batch_size: int) -> dict:
    """Spectra per second of the simulator (float32, default settings) on the CPU and on CUDA."""
    from phonon_ml_core.simulator.dataset import SamplingConfig, sample_parameters
    from phonon_ml_core.simulator.factory import get_simulator
    from phonon_ml_core.specs import ALUMINIUM

    p = sample_parameters(count, SamplingConfig(seed=1, temperature_range=(20.0, 600.0)), material=ALUMINIUM)
    out = {"cpu_threads": torch.get_num_threads()}
    for dev in ("cpu", "cuda"):
        sim = get_simulator(ALUMINIUM, None, dtype=torch.float32, device=dev)
        sim(p.force_constants[:batch_size], p.temperature[:batch_size])  # warm-up
        if dev == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, count, batch_size):
                sim(p.force_constants[i:i + batch_size], p.temperature[i:i + batch_size])
        if dev == "cuda":
            torch.cuda.synchronize()
        out[f"{dev}_spectra_per_s"] = count / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000, help="spectra of the Dask vs serial data set")
    ap.add_argument("--workers", type=int, default=None,
                    help="Dask LocalCluster workers (default: phonon-ml's default, one worker with all threads)")
    ap.add_argument("--skip-one-thread", action="store_true",
                    help="do not also run the serial data set with one torch thread")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--train-count", type=int, default=4000, help="spectra of the training comparison")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--processes", type=int, default=2, help="torchrun processes")
    ap.add_argument("--device", default="cpu", help="cuda: also the GPU figures (training on the GPU)")
    ap.add_argument("--serial-threads", type=int, default=None,
                    help="OMP_NUM_THREADS of the serial / one-process runs (default: torch's default, the cores)")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--workdir", default=None, help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="phonon-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}; "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    results = {}
    try:
        if not args.skip_dask:
            r = results["dask"] = dask_vs_serial(work, args.count, args.workers, args.batch_size, args.serial_threads,
                                                 one_thread=not args.skip_one_thread)
            print_dask(r)
        if not args.skip_train:
            r = results["train"] = torchrun_vs_one(work, args.train_count, args.epochs, args.processes, args.device,
                                                   args.serial_threads)
            print(f"training, {r['count']} spectra, {r['epochs']} epochs on {r['device']}: one process "
                  f"({r['one_process_threads']} torch threads) {r['one_process_s']:.0f} s, torchrun × "
                  f"{r['processes']} (1 thread each) {r['torchrun_s']:.0f} s; best validation loss autoencoder "
                  f"{r['val_loss_one']['pretrain']:.4g} vs {r['val_loss_torchrun']['pretrain']:.4g} "
                  f"({100 * r['relative_difference']['pretrain']:+.1f} %), regressor "
                  f"{r['val_loss_one']['regressor']:.4g} vs {r['val_loss_torchrun']['regressor']:.4g} "
                  f"({100 * r['relative_difference']['regressor']:+.1f} %); target within ±5 % — "
                  f"{'PASS' if r['pass'] else 'MISS'}")
            print(f"  validation R² one process {r['val_loss_one']['r2']}\n  torchrun {r['val_loss_torchrun']['r2']}")
        if torch.cuda.is_available():
            r = results["gpu"] = gpu_throughput(min(args.count, 4096), 64)
            print(f"simulator throughput (batches of 64): CPU ({r['cpu_threads']} threads) "
                  f"{r['cpu_spectra_per_s']:.0f} spectra/s, CUDA "
                  f"{r['cuda_spectra_per_s']:.0f} spectra/s")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
