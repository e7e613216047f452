"""The tuning study is keyed by the code its trials run: editing that code starts a new study."""
from __future__ import annotations

from pathlib import Path

from liversynth.utils.hashing import code_fingerprint


def test_code_fingerprint_changes_with_any_source_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    first = code_fingerprint(Path("pkg"), Path("b.py"))
    assert code_fingerprint(Path("pkg"), Path("b.py")) == first
    (tmp_path / "pkg/a.py").write_text("x = 2\n")
    assert code_fingerprint(Path("pkg"), Path("b.py")) != first


def test_study_name_includes_the_training_code(monkeypatch) -> None:
    import flows.tune_mix as tune
    from tests.conftest import REPO

    assert Path("src/liversynth/training") in tune._TRIAL_CODE
    monkeypatch.chdir(REPO)
    assert all((REPO / p).exists() for p in tune._TRIAL_CODE)
