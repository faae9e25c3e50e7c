"""Every Python example in README.md and docs/*.md runs as written (from a folder beside ../shared, with the
README's ``run.nxs``), unless the line before it says ``<!-- not run: why -->``. The Mantid algorithm pages are
run by test_mantid_docs.py."""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BLOCK = re.compile(r"(?:^(<!-- not run: [^>]*-->)\n)?^```python\n(.*?)^```", re.M | re.S)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    """(code, the 'not run' reason or None) of each ```python block of a Markdown page."""
    return [(code, reason) for reason, code in BLOCK.findall(text)]


def _examples():
    for page in PAGES:
        for i, (code, reason) in enumerate(python_blocks(page.read_text())):
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}[{i}]", marks=marks)


def test_blocks_are_found_and_reasons_are_given():
    found = python_blocks("x\n<!-- not run: needs Mantid -->\n```python\na = 1\n```\n```python\nb = 2\n```\n")
    assert found == [("a = 1\n", "<!-- not run: needs Mantid -->"), ("b = 2\n", "")]
    assert sum(len(python_blocks(p.read_text())) for p in PAGES) >= 8


@pytest.mark.parametrize("code", _examples())
def test_example_runs(code, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    if "../shared" in code:
        if not (SHARED / "data" / "al_arcs_ei50").is_dir():
            pytest.skip("the shared ARCS spectra are absent")
        (tmp_path / "shared").symlink_to(SHARED)
    if "run.nxs" in code:  # a measured-like Mantid processed-NeXus file at 300 K, as the demo writes
        from phonon_ml_core.report.demo import DEMO_TRUE_FC
        from phonon_ml_core.report.demo_data import make_measured_like

        (path,) = make_measured_like(tmp_path, [300.0], np.asarray(DEMO_TRUE_FC), noise=0.04, seed=0)
        Path(path).rename(work / "run.nxs")
    monkeypatch.chdir(work)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<doc example>", "exec"), {"__name__": "__doc_example__"})
    assert os.getcwd() == str(work)
