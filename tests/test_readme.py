"""README.md's numbers come from artifacts: its generated blocks equal what `make results` writes, and
no measured figure is typed by hand outside them."""
from __future__ import annotations

import re

import pytest

from liversynth.evaluation.readme_results import block_names, replace_block
from tests.conftest import REPO

README = (REPO / "README.md").read_text()
# A number with the unit of a measurement (time, speed, ratio, memory, score points), or a score-like
# decimal: what a person would otherwise copy from a run into the text.
MEASURED = re.compile(r"(?<![\w.=-])(\d+(\.\d+)?\s?(min|minutes|ms|s|sec|seconds|x|MiB|GiB|points|pts)\b"
                      r"|0\.\d{2,}|[+-]\d+\.\d+)")


def _outside_blocks(text: str) -> str:
    for name in block_names(text):
        text = replace_block(text, name, "")
    return text


def test_generated_blocks_match_the_artifacts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    from scripts.results import generated_readme

    assert {"results", "benchmarks", "study", "reproducibility"} <= set(block_names(README))
    assert generated_readme(README) == README, "README.md is out of date: run `make results`"


def test_no_hand_typed_measurement_outside_generated_blocks() -> None:
    code = re.compile(r"```.*?```", re.S)  # commands and config examples, not claims
    prose = code.sub("", _outside_blocks(README))
    found = [m.group(0) for m in MEASURED.finditer(prose)]
    assert found == [], f"hand-typed figures in README.md: {found}"


def test_replace_block_names_a_missing_block() -> None:
    with pytest.raises(ValueError, match="BEGIN GENERATED: nope"):
        replace_block("text", "nope", "x")
