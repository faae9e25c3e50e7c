"""The ``phonon-ml`` command line (conventions §6).

Each subcommand lives in ``phonon_ml_core/cli/<name>.py`` with two functions,
``register(subparsers)`` adding its parser and ``run(args) -> int``; the CLI only dispatches to the
same core functions the Mantid plugins call.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import re
import sys
from pathlib import Path

#: Subcommand modules in the order they appear in ``phonon-ml --help``.
COMMANDS = ("materials", "simulate", "merge", "dispersion", "preprocess", "train", "predict", "finetune", "ensemble",
            "fit", "evaluate", "latent_analysis", "demo", "mantid_register")


def build_parser() -> argparse.ArgumentParser:
    """The ``phonon-ml`` parser. Subcommands are registered lazily: ``phonon-ml --help`` lists them from their
    sources (:func:`command_summaries`) without importing them, and only the command on the command line is
    imported and registered (by :class:`LazySubcommands` when argparse reaches it), so help and argument errors
    answer without torch."""
    parser = argparse.ArgumentParser(
        prog="phonon-ml",
        description="Force constants from powder inelastic neutron scattering spectra.")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.register("action", "lazy_parsers", LazySubcommands)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action="lazy_parsers")
    for module, (name, summary) in command_summaries().items():
        if summary is None:   # help text not a plain literal: register the real parser now
            mod = importlib.import_module(f"phonon_ml_core.cli.{module}")
            mod.register(sub).set_defaults(_run=mod.run)
        else:
            sub.add_placeholder(module, name, summary)
    return parser


class LazySubcommands(argparse._SubParsersAction):
    """Subparsers whose real parsers are built only for the command being run: a placeholder (name and one-line
    help, for the command list) is swapped for ``phonon_ml_core.cli.<module>.register``'s parser on first use."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._modules: dict[str, str] = {}

    def add_placeholder(self, module: str, name: str, summary: str) -> None:
        """List ``name`` with ``summary`` in the help; its module is imported only when the command is used."""
        self.add_parser(name, help=summary)
        self._modules[name] = module

    def load(self, module: str) -> argparse.ArgumentParser:
        """Import ``phonon_ml_core.cli.<module>`` and register its real parser in place of the placeholder."""
        mod = importlib.import_module(f"phonon_ml_core.cli.{module}")
        real = argparse._SubParsersAction(option_strings=[], prog=self._prog_prefix, parser_class=self._parser_class,
                                          dest=argparse.SUPPRESS)
        p = mod.register(real)
        p.set_defaults(_run=mod.run)
        for name, parser in real._name_parser_map.items():
            self._name_parser_map[name] = parser
            self._modules.pop(name, None)
        return p

    def __call__(self, parser, namespace, values, option_string=None):
        name = values[0]
        if name in self._modules:
            self.load(self._modules[name])
        return super().__call__(parser, namespace, values, option_string)


def command_summaries() -> dict[str, tuple[str, str | None]]:
    """module → (command name, one-line help) of each built subcommand, in :data:`COMMANDS` order, read from the
    ``add_parser(NAME, help=...)`` call in its source without importing it (help None when not a plain literal)."""
    out: dict[str, tuple[str, str | None]] = {}
    folder = Path(__file__).resolve().parent
    for module in COMMANDS:
        source = folder / f"{module}.py"
        name, summary = module.replace("_", "-"), None
        if not source.is_file():   # no source to read (e.g. bytecode only): the module registers itself
            if importlib.util.find_spec(f"phonon_ml_core.cli.{module}") is not None:
                out[module] = (name, None)
            continue  # else: subcommand not built yet
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_parser" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                name = node.args[0].value
                helps = [k.value for k in node.keywords if k.arg == "help"]
                if helps and isinstance(helps[0], ast.Constant) and isinstance(helps[0].value, str):
                    summary = helps[0].value
                break
        out[module] = (name, summary)
    return out


#: Options taking a comma-separated list of numbers that may start with a minus sign.
NUMBER_LIST_OPTIONS = ("--force-constants", "--start", "--temperature-range", "--range", "--linewidth-range")


def _join_negative_lists(argv: list[str]) -> list[str]:
    """Let ``--force-constants -5,1,2,3,4`` through (argparse would take -5 for an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in NUMBER_LIST_OPTIONS and i + 1 < len(argv) and re.match(r"^-\.?\d", argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


#: What to do after Ctrl-C, per command (default: nothing was written, rerun the command).
RESUME_HINTS = {
    "simulate": "rerun the same command to resume the data set where it stopped",
    "train": "rerun the same command with --resume to continue from the checkpoints",
    "finetune": "rerun the same command with --resume to continue from the checkpoints",
    "evaluate": "rerun the same command with --resume to keep the finished trainings",
}

#: Exceptions that are the user's to fix: one line on stderr, exit code 2.
USER_ERRORS = (ValueError, TypeError, OSError, KeyError, MemoryError)


def main(argv: list[str] | None = None) -> int:
    """Run ``phonon-ml``: exit 0 on success, 2 for a bad input (one line naming the problem and the fix, no
    traceback), 130 after Ctrl-C, 1 for an internal error (traceback with --verbose)."""
    command = "start-up"
    try:
        from phonon_ml_core.cli.checks import check_arguments

        parser = build_parser()
        args = parser.parse_args(_join_negative_lists(list(sys.argv[1:] if argv is None else argv)))
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        command = args.command
        new_folders = [Path(getattr(args, d)) for d in ("output_dir", "output")
                       if isinstance(getattr(args, d, None), str) and not Path(getattr(args, d)).exists()]
        try:
            check_arguments(args)
            return int(args._run(args) or 0)
        except BaseException:
            _remove_empty(new_folders)
            raise
    except KeyboardInterrupt:
        hint = RESUME_HINTS.get(command, "nothing half-written was left; rerun the command")
        print(f"phonon-ml {command}: interrupted; {hint}", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if isinstance(exc, MemoryError):
            exc = MemoryError("out of memory: use fewer spectra (--count, --batch-size) or a larger machine")
        print(f"phonon-ml {command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _remove_empty(folders: list[Path]) -> None:
    """Remove the output folders a failed command created and left empty (nothing is left behind)."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _message(exc: BaseException) -> str:
    """The user-facing text of ``exc`` (KeyError's repr quotes, OSError's errno prefix removed)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{_real_name(str(exc.filename))}: {exc.strerror}"
    return _real_name(str(exc))


def _real_name(text: str) -> str:
    """``text`` with temporary output names replaced by the real ones."""
    return _TEMP_NAME.sub(r"\1", text)


#: The temporary names of :func:`phonon_ml_core.data.fileio.atomic_path` (``.NAME.XXXXXXXX.tmp``) → ``NAME``.
_TEMP_NAME = re.compile(r"\.([^/\s]+?)\.[A-Za-z0-9_]{8}\.tmp")


if __name__ == "__main__":
    sys.exit(main())
