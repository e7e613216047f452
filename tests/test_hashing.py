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


def test_trial_code_is_the_stage_closure(monkeypatch) -> None:
    import flows.tuning as tuning
    from liversynth.utils.imports import closure
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    code = tuning.trial_code()
    assert set(code) == closure(REPO, "flows.tuning")
    assert {Path("flows/tuning.py"), Path("src/liversynth/training/unet.py"),
            Path("src/liversynth/models/predict.py")} <= set(code)
    assert all((REPO / p).is_file() for p in code)
