"""Atomic file writing: nothing half-written is ever left at the destination path."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterator


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Validate an output path before any work: parent exists and is writable, no clobbering."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} already exists: choose another output path or pass --overwrite")
    if p.exists() and p.is_dir():
        raise IsADirectoryError(f"{p} is a directory: give a file name for the output")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise FileNotFoundError(f"the output folder {parent} does not exist: create it first")
    if not parent.is_dir():
        raise NotADirectoryError(f"the output folder {parent} of {p} is a file, not a folder: choose another path")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write to {parent}: choose a writable folder")
    return p


def check_bundle_output(path: str | os.PathLike, overwrite: bool, overwrite_hint: str = "pass --overwrite") -> Path:
    """Validate a model-bundle output folder before any training: no clobbering, not a file, parent exists and
    is writable. ``overwrite_hint`` names the switch that allows replacing (CLI flag or Mantid property)."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists: choose another output path or {overwrite_hint}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is a file, not a bundle directory: choose another path")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"the output folder {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write to {parent}: choose a writable folder")
    return out


def check_output_dir(path: str | os.PathLike, create_parents: bool = False) -> Path:
    """Validate an output folder before any work: not a file, and its parent exists (or, with ``create_parents``,
    will be created: then the nearest existing ancestor must be a folder)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder: choose another output folder")
    parent = out.parent if str(out.parent) else Path(".")
    if create_parents:
        parent = nearest_existing(parent)
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{parent} exists and is not a folder: choose another output folder than {out}")
    if not parent.is_dir():
        raise FileNotFoundError(f"the parent folder {parent} of the output folder does not exist: create it first")
    return out


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path none of whose parts exist)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p if p.exists() else Path(".")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it is renamed onto ``path`` only on success."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions a plain open() would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bundle_folder(path: str | os.PathLike, overwrite: bool, fill: Callable[[Path], None]) -> Path:
    """Write a bundle-like folder atomically: ``fill(tmp)`` writes the content into a private sibling folder, which
    then takes ``path``'s place by rename (an existing bundle only with ``overwrite``, also by rename), so the folder
    is either complete or absent. Refuses to replace anything that is not a bundle."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists: choose another output path or pass --overwrite")
    if target.exists() and not (target / "metadata.json").exists() and \
            (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} exists and is not a phonon-ml bundle: refusing to replace it")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"the output folder {parent} does not exist: create it first")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        fill(tmp)
        for f in tmp.rglob("*"):  # mkdtemp/mkstemp-style private modes → the usual umask modes
            f.chmod((0o777 if f.is_dir() else 0o666) & ~umask)
        tmp.chmod(0o777 & ~umask)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.replace(target, old / "bundle")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
