"""Every usage example in docs/algorithms/*.rst runs against the stand-in (or Mantid) and prints its
testoutput; set-up makes every file it loads, clean-up removes every workspace it made (issue 15 item 4)."""
from __future__ import annotations

import contextlib
import doctest
import io
import os
import re

import pytest

from mantid_standin.harness import ALGS, ROOT, mantid_fixture  # noqa: F401

DIRECTIVE = re.compile(r"^\.\. (testsetup|testcode|testcleanup|testoutput):: (\S+)\n((?:[ \t]*:.*\n)*)\n"
                       r"((?:(?:   .*)?\n)+)", re.M)


def examples(text: str) -> dict[str, dict[str, str]]:
    """{tag: {kind: dedented block}} of a page's doctest directives."""
    found: dict[str, dict[str, str]] = {}
    for kind, tag, _options, body in DIRECTIVE.findall(text):
        lines = [ln[3:] if ln.startswith("   ") else ln for ln in body.rstrip("\n").split("\n")]
        found.setdefault(tag, {})[kind] = "\n".join(lines).strip("\n") + "\n"
    return found


@pytest.mark.parametrize("name", ALGS)
def test_usage_examples_run(mantid, name, tmp_path):
    text = (ROOT / "docs" / "algorithms" / f"{name}-v1.rst").read_text()
    assert ".. sourcelink::\n   :sanity_checks: 0" in text  # outside Mantid's tree (sourcelink.py)
    assert "**Example – " in text
    pages = examples(text)
    assert pages, f"{name} has no usage example"
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for tag, blocks in pages.items():
            assert {"testcode", "testcleanup", "testoutput"} <= set(blocks), f"{tag}: code, cleanup and output"
            before = set(mantid.api.mtd.getObjectNames())
            namespace: dict = {}
            exec("from mantid.simpleapi import *", namespace)  # Mantid's doctest_global_setup
            if "testsetup" in blocks:
                exec(blocks["testsetup"], namespace)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(blocks["testcode"], namespace)
            assert checker.check_output(blocks["testoutput"], out.getvalue(), flags), \
                f"{tag}: expected\n{blocks['testoutput']}got\n{out.getvalue()}"
            exec(blocks["testcleanup"], namespace)
            assert set(mantid.api.mtd.getObjectNames()) <= before, f"{tag} leaves workspaces behind"
            assert not os.listdir(tmp_path), f"{tag} leaves files behind: {os.listdir(tmp_path)}"
    finally:
        os.chdir(cwd)
