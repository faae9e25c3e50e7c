"""Where users wait, in one run (issue 19): the simulator's own call time, each fit's time per simulator call and its
ratio to that call, the data-set rate against the batched physics, start-up, the demo, and euphonic's time for the
same spectrum.

Run from the repository root: ``PYTHONPATH=. python benchmarks/speed.py [--skip-demo] [--skip-euphonic]
[--temperature 50] [--count 2000] [--threads 1] [--json OUT.json]``.

Absolute times depend on the machine and its load; the ratios (measured in the same run) are what the targets are
about: fit time per simulator call within 1.5× of the simulator's own call, a data set within 1.2× of the batched
physics, ``phonon-ml --help`` ≤ 0.5 s, the demo ≤ 60 s (idle 2-core machine).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "al_arcs_ei50"
CLI = "import sys; from phonon_ml_core.cli.app import main; sys.exit(main())"


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def the_spectrum(temperature: float):
    """The measured aluminium spectrum at ``temperature`` (shared data) or, without it, a simulated one."""
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.simulator.factory import get_simulator
    from phonon_ml_core.specs import ALUMINIUM

    path = DATA / f"al_{temperature:.0f}K.h5"
    if path.exists():
        return Spectrum.from_hdf5(path), str(path)
    sim = get_simulator(ALUMINIUM)
    with torch.no_grad():
        y = sim(np.asarray(ALUMINIUM.reference_constants)[None], temperature, linewidth=[0.02])[0].double().numpy()
    rng = np.random.default_rng(0)
    y = np.where(sim.grid.mask, y + 0.03 * rng.standard_normal(y.shape), np.nan)
    return Spectrum(intensity=y, grid=sim.grid, temperature=temperature, normalization="mean",
                    material=ALUMINIUM, experiment=sim.experiment), "simulated (no shared data)"


class SimulatorClock:
    """Seconds spent inside the simulator's forward calls and in backward passes while installed, and the shape of
    every call: (batch size, float dtype, whether it builds a graph, whether it carries γ) → count."""

    def __init__(self):
        from phonon_ml_core.simulator.powder import PowderSimulator

        self.cls, self.forward, self.backward = PowderSimulator, 0.0, 0.0
        self._forward, self._backward = PowderSimulator.forward, torch.Tensor.backward
        self.shapes: dict[tuple[int, torch.dtype, bool, bool], int] = {}

    def __enter__(self):
        clock = self

        def forward(sim, *a, **k):
            t0 = time.perf_counter()
            try:
                out = clock._forward(sim, *a, **k)
            finally:
                clock.forward += time.perf_counter() - t0
            lw = k.get("linewidth", a[3] if len(a) > 3 else None)
            key = (int(out.shape[0]), sim.dtype, bool(out.requires_grad), lw is not None)
            clock.shapes[key] = clock.shapes.get(key, 0) + 1
            return out

        def backward(t, *a, **k):
            t0 = time.perf_counter()
            try:
                return clock._backward(t, *a, **k)
            finally:
                clock.backward += time.perf_counter() - t0

        self.cls.forward, torch.Tensor.backward = forward, backward
        return self

    def __exit__(self, *exc):
        self.cls.forward, torch.Tensor.backward = self._forward, self._backward


def same_calls_seconds(spectrum, shapes: dict, repeats: int) -> float:
    """Seconds the simulator alone takes for the calls a fit made (``SimulatorClock.shapes``): each shape (batch
    size, precision, forward or forward + backward of constants and γ, with or without γ) timed on its own
    (median) and multiplied by how often the fit made it — the honest reference of a fit whose calls carry several
    spectra."""
    from phonon_ml_core.simulator.factory import get_simulator
    from phonon_ml_core.specs import ALUMINIUM

    t = float(spectrum.temperatures()[0])
    total = 0.0
    for (b, dtype, grad, gamma), count in shapes.items():
        sim = get_simulator(grid=spectrum.grid, dtype=dtype)
        fc = torch.as_tensor(np.asarray(ALUMINIUM.reference_constants)[None], dtype=dtype).repeat(b, 1)

        def call(sim=sim, fc=fc, b=b, dtype=dtype, grad=grad, gamma=gamma):
            x = fc.clone().requires_grad_(grad)
            lw = torch.full((b,), 0.03, dtype=dtype, requires_grad=grad) if gamma else None
            with torch.set_grad_enabled(grad):
                y = sim(x, t, linewidth=lw)
                if grad:
                    torch.nan_to_num(y).square().sum().backward()

        total += count * median_time(call, max(3, repeats // 2))
    return total


def simulator_calls(spectrum, repeats: int, only: str | None = None):
    """The simulator's own call times on the spectrum's grid: forward (no gradient), 1 spectrum and batches of 8,
    with and without γ, in float32 (Nelder–Mead's and the data sets' precision), and in float64 (the gradient
    fit's) forward and forward + backward (constants and γ). ``only``: just that figure (ms)."""
    from phonon_ml_core.simulator.factory import get_simulator
    from phonon_ml_core.specs import ALUMINIUM

    t = float(spectrum.temperatures()[0])
    out = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        if only is not None and not only.startswith(name):
            continue
        sim = get_simulator(grid=spectrum.grid, dtype=dtype)
        fc = torch.as_tensor(np.asarray(ALUMINIUM.reference_constants)[None], dtype=dtype)
        with torch.no_grad():
            for b in ((1,) if only else (1, 8)) if dtype == torch.float32 else (1,):
                x, lw = fc.repeat(b, 1), torch.full((b,), 0.03, dtype=dtype)
                out[f"{name}_forward_{b}_gamma_ms"] = \
                    1e3 * median_time(lambda x=x, lw=lw, sim=sim: sim(x, t, linewidth=lw), repeats) / b
                out[f"{name}_forward_{b}_no_gamma_ms"] = 1e3 * median_time(lambda x=x, sim=sim: sim(x, t), repeats) / b

        def forward_backward(sim=sim, fc=fc, dtype=dtype):
            x = fc.clone().requires_grad_(True)
            lw = torch.full((1,), 0.03, dtype=dtype, requires_grad=True)
            torch.nan_to_num(sim(x, t, linewidth=lw)).square().sum().backward()

        if dtype == torch.float64 and (only is None or "backward" in only):
            out[f"{name}_forward_backward_1_gamma_ms"] = 1e3 * median_time(forward_backward, repeats)
    return out if only is None else out[only]


#: The simulator call each fit makes (its precision, forward or forward + backward), as keys of simulator_calls.
FIT_CALL = {"nelder-mead": ("float32_forward_1_gamma_ms", "float32 forward"),
            "gradient": ("float64_forward_backward_1_gamma_ms", "float64 forward+backward")}


def fits(spectrum, methods: list[str], repeats: int) -> dict:
    """Each method on ``spectrum`` (γ and background free, as `phonon-ml fit`): time, calls and ratios. The call
    each fit makes is timed just before and just after it (the mean is the reference), so that a load that changes
    during the run affects both alike; the time inside the simulator is measured during the fit itself."""
    from phonon_ml_core.fitting import fit_spectrum

    out = {}
    for method in methods:
        key, label = FIT_CALL[method]
        before = simulator_calls(spectrum, repeats, only=key)
        with SimulatorClock() as clock:
            r = fit_spectrum(spectrum, method=method, fit_linewidth=True, fit_background=True)
        ref = 0.5 * (before + simulator_calls(spectrum, repeats, only=key))
        same = same_calls_seconds(spectrum, clock.shapes, repeats)
        per_call = 1e3 * r.seconds / r.evaluations
        inside = clock.forward + clock.backward
        out[method] = {"seconds": r.seconds, "calls": r.evaluations, "spectra": r.spectra_simulated,
                       "nmse": r.nmse, "force_constants": r.force_constants.tolist(), "ms_per_call": per_call,
                       "reference_call_ms": ref, "ratio_to_call": per_call / ref, "reference_call": label,
                       "ratio_per_spectrum": 1e3 * r.seconds / r.spectra_simulated / ref,
                       "same_calls_seconds": same, "ratio_to_same_calls": r.seconds / same,
                       "call_shapes": {f"{b}x{str(d).removeprefix('torch.')}{'+grad' if g else ''}"
                                       f"{'+gamma' if lw else ''}": n for (b, d, g, lw), n in clock.shapes.items()},
                       "simulator_seconds": inside, "simulator_forward_seconds": clock.forward,
                       "backward_seconds": clock.backward, "ratio_to_time_in_simulator": r.seconds / inside}
    return out


def dataset(count: int, threads: int) -> dict:
    """generate_dataset and `phonon-ml simulate --count` against the batched physics of the same spectra."""
    from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset, sample_parameters
    from phonon_ml_core.simulator.factory import get_simulator
    from phonon_ml_core.specs import ALUMINIUM

    config = SamplingConfig()
    sim = get_simulator(ALUMINIUM, None, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as work:
        generate_dataset(Path(work) / "warm.h5", 16, config, progress=False)   # warm caches
        p = sample_parameters(count, config, material=ALUMINIUM)
        order = np.argsort(p.temperature, kind="stable")
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, count, 8):
                rows = np.sort(order[s:s + 8])
                sim(p.force_constants[rows], p.temperature[rows])
        physics = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate_dataset(Path(work) / "api.h5", count, config, progress=False)
        api = time.perf_counter() - t0
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CLI, "simulate", "--count", str(count), "--output",
                        str(Path(work) / "cli.h5"), "--no-progress"], check=True, env=env, cwd=work,
                       capture_output=True)
        cli = time.perf_counter() - t0
    return {"count": count, "physics_seconds": physics, "api_seconds": api, "cli_seconds": cli,
            "spectra_per_second": count / api, "api_ratio": api / physics, "cli_ratio": cli / physics}


def startup(repeats: int = 3) -> dict:
    """Wall time of `phonon-ml --help` and of every `phonon-ml COMMAND --help` in a fresh interpreter (median)."""
    from phonon_ml_core.cli.app import command_summaries

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = {}
    argvs = [("help", ["--help"])] + [(name, [name, "--help"]) for name, _ in command_summaries().values()]
    for key, argv in argvs:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", CLI, *argv], check=True, env=env, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[f"{key}_seconds"] = statistics.median(times)
    slowest = max((k for k in out if k != "help_seconds"), key=out.get)
    out["slowest_command_help"], out["slowest_command_help_seconds"] = slowest.removesuffix("_seconds"), out[slowest]
    return out


def demo() -> dict:
    """Wall time of the default `phonon-ml demo` (aluminium, ARCS 50 meV, three temperatures, both fits)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", CLI, "demo", "--output-dir", str(Path(work) / "demo")], check=True,
                       env=env, capture_output=True)
        return {"demo_seconds": time.perf_counter() - t0}


def euphonic(spectrum, npts: int, calls: dict) -> dict:
    """euphonic's S(|Q|,E) of the same material, experiment and temperature (benchmarks/independent_metals.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from independent_metals import euphonic_map

    from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT

    t = float(spectrum.temperatures()[0])
    model = ALUMINIUM.bvk_model(ALUMINIUM.reference_constants, temperature_k=t)
    t0 = time.perf_counter()
    euphonic_map(model, STANDARD_EXPERIMENT, t, npts)
    seconds = time.perf_counter() - t0
    return {"euphonic_seconds": seconds, "npts": npts,
            "ratio_to_forward": 1e3 * seconds / calls["float64_forward_1_no_gamma_ms"]}


#: (figure, target, unit) of issue 19, in the order printed.
TARGETS = (("fit nelder-mead: seconds per aluminium spectrum", 10.0, "s"),
           ("fit gradient: seconds per aluminium spectrum", 5.0, "s"),
           ("fit nelder-mead: time per call / the simulator's call", 1.5, "×"),
           ("fit gradient: time per call / the same calls alone", 1.5, "×"),
           ("fit gradient: time per call / single-spectrum fwd+bwd", 1.5, "×"),
           ("`phonon-ml --help`", 0.5, "s"),
           ("slowest `phonon-ml COMMAND --help`", 0.5, "s"),
           ("`phonon-ml simulate --count N` / batched physics", 1.2, "×"),
           ("`phonon-ml demo`", 60.0, "s"))


def targets(report: dict) -> list[tuple[str, float, float, str, bool]]:
    """Each measured figure the issue's targets name, with its target: (name, value, target, unit, passed)."""
    fits_, s = report.get("fits", {}), report["startup"]
    values = [fits_.get("nelder-mead", {}).get("seconds"), fits_.get("gradient", {}).get("seconds"),
              fits_.get("nelder-mead", {}).get("ratio_to_call"), fits_.get("gradient", {}).get("ratio_to_same_calls"),
              fits_.get("gradient", {}).get("ratio_to_call"), s["help_seconds"], s["slowest_command_help_seconds"],
              report.get("dataset", {}).get("cli_ratio"), report.get("demo", {}).get("demo_seconds")]
    return [(name, value, limit, unit, value <= limit) for (name, limit, unit), value in zip(TARGETS, values)
            if value is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--temperature", type=float, default=50.0, help="K: which aluminium spectrum to fit (default 50)")
    ap.add_argument("--methods", default="nelder-mead,gradient")
    ap.add_argument("--count", type=int, default=2000, help="spectra of the data-set measurement (default 2000)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the fits use)")
    ap.add_argument("--repeats", type=int, default=10, help="simulator calls per timing (median)")
    ap.add_argument("--npts", type=int, default=300, help="euphonic q-points per |Q| bin sphere (default 300)")
    ap.add_argument("--skip-demo", action="store_true", help="do not time `phonon-ml demo`")
    ap.add_argument("--skip-euphonic", action="store_true")
    ap.add_argument("--skip-dataset", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} at start, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch thread(s)")
    spectrum, source = the_spectrum(args.temperature)
    report: dict = {"spectrum": source, "threads": args.threads, "load_average_start": load}
    calls = report["simulator"] = simulator_calls(spectrum, args.repeats)
    print(f"simulator, one aluminium spectrum ({source}):")
    print(f"  float32 forward, 1 spectrum: {calls['float32_forward_1_gamma_ms']:6.1f} ms with γ, "
          f"{calls['float32_forward_1_no_gamma_ms']:6.1f} ms without; batch of 8: "
          f"{calls['float32_forward_8_gamma_ms']:6.1f} / {calls['float32_forward_8_no_gamma_ms']:6.1f} ms per spectrum")
    print(f"  float64 forward, 1 spectrum: {calls['float64_forward_1_gamma_ms']:6.1f} ms with γ, "
          f"{calls['float64_forward_1_no_gamma_ms']:6.1f} ms without; forward + backward (constants and γ): "
          f"{calls['float64_forward_backward_1_gamma_ms']:6.1f} ms")
    report["fits"] = fits(spectrum, args.methods.split(","), args.repeats)
    for method, f in report["fits"].items():
        print(f"fit {method:12s}: {f['seconds']:6.1f} s, {f['calls']:4d} calls ({f['spectra']} spectra), "
              f"{f['ms_per_call']:6.1f} ms/call = {f['ratio_to_call']:.2f} × the simulator's single-spectrum "
              f"{f['reference_call']} call ({f['reference_call_ms']:.1f} ms around the fit; "
              f"{f['ratio_per_spectrum']:.2f} × per simulated spectrum); "
              f"{f['ratio_to_same_calls']:.2f} × the same calls made alone "
              f"({f['same_calls_seconds']:.1f} s: {f['call_shapes']}); {f['ratio_to_time_in_simulator']:.2f} × "
              f"its time inside the simulator; NMSE {f['nmse']:.4f}")
    if not args.skip_dataset:
        d = report["dataset"] = dataset(args.count, args.threads)
        print(f"data set of {d['count']}: batched physics {d['physics_seconds']:.1f} s; generate_dataset "
              f"{d['api_seconds']:.1f} s ({d['spectra_per_second']:.0f} spectra/s) = {d['api_ratio']:.2f} × physics; "
              f"`phonon-ml simulate --count {d['count']}` {d['cli_seconds']:.1f} s = {d['cli_ratio']:.2f} × physics")
    s = report["startup"] = startup()
    print(f"start-up: `phonon-ml --help` {s['help_seconds']:.2f} s; slowest `phonon-ml COMMAND --help`: "
          f"{s['slowest_command_help']} {s['slowest_command_help_seconds']:.2f} s")
    if not args.skip_euphonic:
        try:
            e = report["euphonic"] = euphonic(spectrum, args.npts, calls)
            print(f"euphonic, the same spectrum (coherent one-phonon, {e['npts']} points per sphere): "
                  f"{e['euphonic_seconds']:.1f} s = {e['ratio_to_forward']:.0f} × our float64 forward call without γ")
        except ImportError as exc:
            print(f"euphonic: not installed ({exc})")
    if not args.skip_demo:
        report["demo"] = demo()
        print(f"`phonon-ml demo`: {report['demo']['demo_seconds']:.0f} s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report["load_average_end"] = load
    print(f"load average {load:.2f} at the end")
    report["targets"] = targets(report)
    print("targets of issue 19 (idle 2-core machine; this run's load is printed above):")
    for name, value, limit, unit, ok in report["targets"]:
        print(f"  {name:58s} {value:8.2f} {unit:2s} (target ≤ {limit:g}) {'PASS' if ok else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
