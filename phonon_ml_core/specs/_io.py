"""Shared plumbing of the spec data classes: the error type and JSON/YAML file round trips."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing.Self is Python >= 3.11; annotations are not evaluated at run time
    from typing import Self

#: File suffixes :meth:`Serialisable.from_file` understands.
JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yaml", ".yml")


class SpecError(ValueError):
    """An invalid material or experiment specification; the message names the field and the fix."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`SpecError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise SpecError(message)


def check_keys(data: Any, cls_name: str, known: set[str], required: set[str]) -> None:
    """Reject a dict with missing or unknown keys, naming them and the allowed ones."""
    require(isinstance(data, dict), f"{cls_name}: expected a mapping (dict / JSON object), got {type(data).__name__}")
    missing = sorted(required - set(data))
    require(not missing, f"{cls_name}: missing field(s) {missing}; add them (known fields: {sorted(known)})")
    unknown = sorted(set(data) - known - {"kind_of_spec", "format_version"})
    require(not unknown, f"{cls_name}: unknown field(s) {unknown}; remove or rename them "
                         f"(known fields: {sorted(known)})")


class Serialisable:
    """Mixin: ``to_dict``/``from_dict`` (defined by the class) plus JSON and YAML files."""

    def to_dict(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON (floats written with full precision: round trips are exact)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> Self:
        """Read a file written by :meth:`to_json_file`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: not valid JSON ({exc}); fix the file or write it with to_json_file") from exc
        return cls.from_dict(data)

    def to_yaml_file(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as YAML (PyYAML writes floats with repr: round trips are exact)."""
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120),
                              encoding="utf-8")

    @classmethod
    def from_yaml_file(cls, path: str | os.PathLike) -> Self:
        """Read a YAML file (e.g. one written by :meth:`to_yaml_file`)."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML ({exc}); fix the file or write it with to_yaml_file") from exc
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Self:
        """Read a ``.json``, ``.yaml`` or ``.yml`` file, choosing the format by suffix."""
        p = Path(path)
        require(p.is_file(), f"{cls.__name__} file {str(p)!r} does not exist; give the path of a JSON or YAML file")
        suffix = p.suffix.lower()
        if suffix in JSON_SUFFIXES:
            return cls.from_json_file(p)
        if suffix in YAML_SUFFIXES:
            return cls.from_yaml_file(p)
        raise SpecError(f"{str(p)!r}: unknown suffix {p.suffix!r}; use one of {list(JSON_SUFFIXES + YAML_SUFFIXES)}")
