"""``phonon-ml mantid-register``: add the phonon-ml plugin directory to Mantid's user properties.

Mantid loads every ``.py`` in the directories of ``user.python.plugins.directories`` (``;``-separated) from
its user properties file on ``import mantid.simpleapi`` and in Workbench (docs/mantid_api.md §0, §8). The file is
found as Mantid finds it (``ConfigService.getUserFilename()`` when Mantid imports; else
``ConfigServiceImpl::getUserPropertiesDir``: ``~/.mantid/`` on Linux and macOS, the installation's base
directory, where its executable lives, on Windows). Poco's property reader treats ``\\`` as an escape, so paths are
written with forward slashes. Existing entries and all other lines are kept; running it twice changes nothing;
the file is written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path, PurePath, PureWindowsPath

from phonon_ml_core.data.fileio import atomic_path

KEY = "user.python.plugins.directories"


USER_FILE = "Mantid.user.properties"


def properties_file_for(platform: str, home: str, executable: str) -> PurePath:
    """Mantid's user properties file on ``platform`` ("nt" or "posix", as ``os.name``) without Mantid:
    ``<home>/.mantid/Mantid.user.properties``, or on Windows beside the executable (the base directory)."""
    if platform == "nt":
        return PureWindowsPath(executable).parent / USER_FILE
    return PurePath(home) / ".mantid" / USER_FILE


def default_properties_file() -> Path:
    """The user properties file the running Mantid reads (ConfigService), else :func:`properties_file_for`."""
    try:
        from mantid.kernel import ConfigService

        return Path(ConfigService.getUserFilename())
    except (ImportError, AttributeError, RuntimeError):
        return Path(properties_file_for(os.name, str(Path.home()), sys.executable))


def property_path(directory: str) -> str:
    """``directory`` as Poco reads it back: forward slashes (``C:/Mantid/plugins``), never backslash escapes."""
    return directory.replace("\\", "/")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "mantid-register", help="make Mantid load the phonon-ml algorithms (adds the plugin directory)",
        description=f"Add the phonon-ml plugin directory to {KEY} in Mantid's user properties file (found as "
                    "Mantid does: ~/.mantid/Mantid.user.properties on Linux/macOS, the installation directory on "
                    "Windows; or --properties-file), keeping existing entries; idempotent. Restart Mantid afterwards.")
    p.add_argument("--properties-file", default=None, help="Mantid user properties file (default: where Mantid "
                                                           "reads it on this platform)")
    p.add_argument("--print", dest="print_only", action="store_true", help="only print the plugin directory")
    p.add_argument("--remove", action="store_true", help="remove the directory from the property instead")
    return p


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(";") if v.strip()]


def update_properties(text: str, directory: str, remove: bool = False) -> tuple[str, bool]:
    """``text`` with ``directory`` added to (or removed from) the KEY line; (new text, changed)."""
    lines = text.splitlines()
    directory = property_path(directory)
    norm = os.path.normpath(directory)
    out, found, changed = [], False, False
    for line in lines:
        stripped = line.lstrip()
        is_key = "=" in stripped and stripped.split("=", 1)[0].strip() == KEY
        if not found and not stripped.startswith(("#", "!")) and is_key:
            found = True
            entries = _split(stripped.split("=", 1)[1])
            present = any(os.path.normpath(property_path(e)) == norm for e in entries)
            if remove and present:
                entries = [e for e in entries if os.path.normpath(property_path(e)) != norm]
                changed = True
            elif not remove and not present:
                entries.append(directory)
                changed = True
            out.append(f"{KEY} = {';'.join(entries)}" if changed else line)
        else:
            out.append(line)
    if not found and not remove:
        out.append(f"{KEY} = {directory}")
        changed = True
    new = "\n".join(out) + ("\n" if out else "")
    return new, changed


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.mantid_support.adapter import plugins_directory

    from phonon_ml_core.data.validation import check_input_file

    directory = str(plugins_directory())
    if args.print_only:
        print(directory)
        return 0
    path = Path(args.properties_file) if args.properties_file else default_properties_file()
    if path.exists() and path.is_dir():
        raise IsADirectoryError(f"{path} is a directory: give the Mantid.user.properties file")
    if not path.parent.exists():
        if args.properties_file:
            raise FileNotFoundError(f"the folder {path.parent} does not exist: create it first")
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(f"--properties-file {path}: {path.parent} is a file, not a folder: give another path")
    if path.exists():
        check_input_file(path, "--properties-file")
    if not args.print_only:
        check_writable_properties(path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"--properties-file {path} cannot be read as text ({exc}): give the Mantid.user.properties "
                         "file (a text file of key = value lines)") from None
    new, changed = update_properties(text, directory, remove=args.remove)
    if changed:
        mode = path.stat().st_mode & 0o777 if path.exists() else None
        with atomic_path(path) as tmp:
            tmp.write_text(new, encoding="utf-8")
            if mode is not None:
                os.chmod(tmp, mode)
        print(f"{'removed' if args.remove else 'added'} {directory} {'from' if args.remove else 'to'} {KEY} in {path}"
              + ("" if args.remove else "; restart Mantid to load the algorithms"))
    else:
        print(f"{path} already {'lacks' if args.remove else 'has'} {directory} in {KEY}: nothing to do")
    return 0


def check_writable_properties(path: Path) -> None:
    """PermissionError naming the file and the fix when the properties file or its folder cannot be written (the
    file is replaced atomically, which needs the folder writable)."""
    folder = path.parent if str(path.parent) else Path(".")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--properties-file {path}: cannot write to the folder {folder}: choose a writable "
                              "location (--properties-file) or run as a user who may change it")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"--properties-file {path} is read-only: make it writable (chmod u+w) or give "
                              "another --properties-file")
