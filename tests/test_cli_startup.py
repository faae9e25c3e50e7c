"""Start-up of the command line (issue 19): help and argument errors answer without importing torch, and the
lazily registered parser behaves as the fully registered one."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "scipy", "h5py", "matplotlib", "phonopy", "resins")

PROBE = """
import json, sys
from phonon_ml_core.cli.app import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _probe(*argv: str) -> tuple[int, list[str], str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120)
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return report["code"], report["heavy"], out.stdout + out.stderr


@pytest.mark.parametrize("argv, code, text", [
    (("--help",), 0, "fit"),
    (("fit", "--help"), 0, "--method {nelder-mead,gradient}"),
    (("fit", "--input", "x.h5"), 2, "the following arguments are required: --output"),
    (("fit", "--method", "simplex", "--input", "x.h5", "--output", "r.json"), 2, "invalid choice"),
    (("no-such-command",), 2, "invalid choice"),
    (("materials", "--help"), 0, "--json"),
    (("predict", "--help"), 0, "--samples"),
    (("demo", "--help"), 0, "--quick"),
])
def test_help_and_argument_errors_do_not_import_torch(argv, code, text):
    got, heavy, output = _probe(*argv)
    assert got == code, output
    assert text in output
    assert heavy == [], f"phonon-ml {' '.join(argv)} imported {heavy}"


def test_lazy_parser_lists_every_command_with_its_real_help():
    """The command list of `phonon-ml --help` (read from the sources) equals the one the registered parsers give."""
    import argparse
    import importlib

    from phonon_ml_core.cli.app import COMMANDS, build_parser, command_summaries

    full = argparse.ArgumentParser(prog="phonon-ml")
    sub = full.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(f"phonon_ml_core.cli.{module}").register(sub)
    real = {a.dest: a.help for a in sub._choices_actions}
    assert dict(command_summaries().values()) == real
    assert build_parser().format_help().count("\n") > len(real)
    args = build_parser().parse_args(["fit", "--input", "a.h5", "--output", "r.json", "--method", "gradient"])
    assert args.method == "gradient" and callable(args._run) and args.command == "fit"


def _commands() -> list[str]:
    from phonon_ml_core.cli.app import command_summaries

    return [name for name, _ in command_summaries().values()]


@pytest.mark.parametrize("command", _commands())
def test_every_command_help_and_argument_error_do_not_import_torch(command):
    """`phonon-ml COMMAND --help` and an unknown flag of every command answer without torch (or scipy, resins,
    h5py, matplotlib, phonopy)."""
    for argv, code, text in (((command, "--help"), 0, f"usage: phonon-ml {command}"),
                             ((command, "--no-such-flag"), 2, "error:")):
        got, heavy, output = _probe(*argv)
        assert got == code, output
        assert text in output
        assert heavy == [], f"phonon-ml {' '.join(argv)} imported {heavy}"


def test_package_imports_are_lazy():
    """Importing the packages on the --help path loads none of the heavy modules (PEP 562 lazy public names)."""
    probe = ("import sys; import phonon_ml_core.specs, phonon_ml_core.simulator, phonon_ml_core.preprocess, "
             "phonon_ml_core.prediction, phonon_ml_core.readers, phonon_ml_core.fitting; "
             "from phonon_ml_core.specs import ALUMINIUM; "
             "print([m for m in HEAVY if m in sys.modules])").replace("HEAVY", repr(HEAVY))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    import phonon_ml_core.readers as readers
    import phonon_ml_core.simulator as simulator

    assert callable(simulator.simulate_spectrum) and callable(readers.read_spectrum)
    assert "get_simulator" in dir(simulator)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        simulator.nothing  # noqa: B018


def test_cli_choices_are_the_cores():
    from phonon_ml_core.cli import choices
    from phonon_ml_core.fitting import METHODS
    from phonon_ml_core.fitting.frequencies import DISPERSION_PATHS
    from phonon_ml_core.fitting.joint_model import SERIES_MODELS
    from phonon_ml_core.learn.networks import FAMILIES
    from phonon_ml_core.learn.setup import training_defaults
    from phonon_ml_core.report.budget import STRATEGIES
    from phonon_ml_core.report.latent import DEFAULT_DELTA, DEFAULT_THRESHOLD
    from phonon_ml_core.simulator import SimulationSettings
    from phonon_ml_core.specs import STANDARD_EXPERIMENT

    assert choices.FIT_METHODS == METHODS
    assert choices.SERIES_MODELS == SERIES_MODELS
    standard = (STANDARD_EXPERIMENT.instrument, STANDARD_EXPERIMENT.chopper_package,
                STANDARD_EXPERIMENT.chopper_frequency, STANDARD_EXPERIMENT.ei_mev)
    assert standard == (choices.STANDARD_INSTRUMENT, choices.STANDARD_CHOPPER_PACKAGE,
                        choices.STANDARD_CHOPPER_FREQUENCY, choices.STANDARD_EI_MEV)
    assert SimulationSettings().mesh_density == choices.MESH_DENSITY
    assert choices.DISPERSION_PATHS == DISPERSION_PATHS
    assert choices.FAMILIES == FAMILIES
    assert training_defaults() == choices.TRAINING_DEFAULTS
    assert choices.EVALUATION_STRATEGIES == STRATEGIES
    assert (choices.LATENT_THRESHOLD, choices.LATENT_DELTA) == (DEFAULT_THRESHOLD, DEFAULT_DELTA)


def test_a_command_without_a_readable_summary_registers_itself(monkeypatch):
    from phonon_ml_core.cli import app

    real = app.command_summaries()
    monkeypatch.setattr(app, "command_summaries", lambda: {**real, "materials": ("materials", None)})
    parser = app.build_parser()
    assert "list the built-in materials" in parser.format_help()
    assert parser.parse_args(["materials", "--json"]).json is True
