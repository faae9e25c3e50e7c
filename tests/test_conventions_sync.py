"""docs/conventions.md is the repository's copy of the shared contracts: it must stay in sync with it."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "docs" / "conventions.md"


def _body(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if text.startswith("<!--"):
        text = text[text.index("-->") + 3:].lstrip("\n")
    return text


def test_repository_conventions_match_the_shared_copy():
    if not SHARED.is_file():
        pytest.skip("../shared/docs/conventions.md is not beside the repository")
    assert _body(REPO / "docs" / "conventions.md") == SHARED.read_text(encoding="utf-8"), (
        "docs/conventions.md differs from ../shared/docs/conventions.md: copy the shared file over it")


def test_every_cited_section_exists():
    """Every "conventions §N" cited in the package, docs and plugins names a section of docs/conventions.md."""
    import re

    text = (REPO / "docs" / "conventions.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\d+)\.", text, flags=re.M))
    cited = set()
    for path in [*REPO.glob("phonon_ml_core/**/*.py"), *REPO.glob("plugins/*.py"), *REPO.glob("docs/**/*.md"),
                 REPO / "README.md"]:
        cited |= set(re.findall(r"conventions §(\d+)", path.read_text(encoding="utf-8")))
    assert cited, "no citations found: the scan is broken"
    assert cited <= sections, f"cited sections {sorted(cited - sections)} are not in docs/conventions.md"
