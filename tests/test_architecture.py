"""The habits that keep the house in order: small modules, no import cycles, the core never imports the CLI.

Imports are read from the source with ``ast`` (module-level and function-level imports alike), so a cycle hidden
inside a function is found as well as one at the top of a file.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "phonon_ml_core"
MAX_LINES = 400
#: Layers from the bottom up: a package may import only from its own layer or the ones below.
LAYERS = [
    {"physics"},
    {"specs"},
    {"data"},
    {"simulator", "readers"},
    {"preprocess"},
    {"fitting", "learn"},
    {"prediction"},
    {"report"},
    {"mantid_support", "cli"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in ``path`` (resolved to the longest existing module name)."""
    found: set[str] = set()
    rel = path.relative_to(REPO).with_suffix("").parts
    package = list(rel[:-1])  # the package holding this file (an __init__'s own package likewise)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if not name.startswith("phonon_ml_core"):
                continue
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != "phonon_ml_core":
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_modules_are_small():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_no_import_cycles_between_modules():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle of logic
    edges = {m: {d for d in deps if not (m == d.rpartition(".")[0] and (PACKAGE / m.split(".", 1)[-1].replace(".", "/")
                                                                           / "__init__.py").exists())}
             for m, deps in graph.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in sorted(edges.get(m, ())):
            if seen.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(edges):
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_packages_import_only_their_layer_or_below():
    level = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
    graph = _graph()
    unknown = sorted({_package(m) for m in graph if _package(m) not in level and "." in m[len("phonon_ml_core."):]})
    assert not unknown, f"packages without a layer in tests/test_architecture.py: {unknown}"
    bad = []
    for m, deps in graph.items():
        pm = _package(m)
        if pm not in level:
            continue
        for d in deps:
            pd = _package(d)
            if pd in level and level[pd] > level[pm]:
                bad.append(f"{m} -> {d}")
    assert not bad, "imports reaching up the layers (physics < specs < data < simulator/readers < preprocess < " \
                    "fitting/learn < prediction < report < mantid_support/cli): " + ", ".join(sorted(bad))


def test_core_never_imports_the_cli():
    graph = _graph()
    bad = sorted(f"{m} -> {d}" for m, deps in graph.items() if _package(m) != "cli"
                 for d in deps if _package(d) == "cli")
    assert not bad, f"the core imports the command line: {bad}"


def test_architecture_doc_lists_every_module():
    """docs/architecture.md shows every module under its package (regenerate with tools/architecture_tree.py)."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for path in sorted(PACKAGE.glob("*/*.py")):
        if path.name == "__init__.py":
            continue
        heading = f"- **`{path.parent.name}/`**"
        block = doc.split(heading, 1)[1].split("\n- **", 1)[0] if heading in doc else ""
        if f"`{path.name}`" not in block:
            missing.append(f"{path.parent.name}/{path.name}")
    assert not missing, f"docs/architecture.md lacks {missing}: run python tools/architecture_tree.py and paste"
