"""Print the package tree of docs/architecture.md: one line per module, from each module's docstring.

Run ``python tools/architecture_tree.py`` after adding, removing or renaming a module and paste the output into
docs/architecture.md between the ``tree`` markers (tests/test_architecture.py checks that every module is listed).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "phonon_ml_core"
#: The packages in the order of the flow, with what each is for.
PACKAGES = [("specs", "what is measured: materials, instruments, experiments, grids and resolution"),
            ("physics", "lattice dynamics: units, shell symmetry, the BvK model, 3×3 eigenproblems"),
            ("data", "the one Spectrum type, its HDF5 file, normalisation, rebinning, safe writes, JSON"),
            ("simulator", "simulate: the batched differentiable powder simulator and training data sets"),
            ("readers", "measured files in: Mantid processed NeXus, NXSPE, our HDF5; sample logs"),
            ("preprocess", "preprocess: measured spectra to model-ready χ''(|Q|,E) on a grid"),
            ("learn", "learn: networks, training stages, physics stages, bundles, adaptation"),
            ("fitting", "fit: Nelder–Mead and gradient fits, uncertainties, frequencies, series"),
            ("prediction", "predict: force constants from a bundle; the input files of fit and predict"),
            ("report", "report: figures, latent analysis, the evaluation report, the demo"),
            ("cli", "the `phonon-ml` command line, one module per subcommand"),
            ("mantid_support", "adapters between Mantid workspaces and the core, used by plugins/")]


def tree() -> str:
    lines = []
    for pkg, what in PACKAGES:
        lines.append(f"- **`{pkg}/`**: {what}")
        for f in sorted((PACKAGE / pkg).glob("*.py")):
            if f.name == "__init__.py":
                continue
            doc = (ast.get_docstring(ast.parse(f.read_text(encoding="utf-8"))) or "").split("\n\n")[0]
            first = " ".join(doc.split())
            if len(first) > 150:
                first = first[:147].rsplit(" ", 1)[0] + " …"
            lines.append(f"  - `{f.name}`: {first}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(tree())
