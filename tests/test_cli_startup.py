"""Start-up of the command line (issue 19): help and argument errors answer without importing torch, and the
lazily registered parser behaves as the fully registered one."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "scipy", "h5py", "matplotlib", "phonopy")

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


def test_cli_choices_are_the_cores():
    from phonon_ml_core.cli import choices
    from phonon_ml_core.fitting import METHODS
    from phonon_ml_core.fitting.joint_model import SERIES_MODELS

    assert choices.FIT_METHODS == METHODS
    assert choices.SERIES_MODELS == SERIES_MODELS


def test_a_command_without_a_readable_summary_registers_itself(monkeypatch):
    from phonon_ml_core.cli import app

    real = app.command_summaries()
    monkeypatch.setattr(app, "command_summaries", lambda: {**real, "materials": ("materials", None)})
    parser = app.build_parser()
    assert "list the built-in materials" in parser.format_help()
    assert parser.parse_args(["materials", "--json"]).json is True
