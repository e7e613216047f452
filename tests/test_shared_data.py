"""Shared data through the default DVC remote: push from the tiny pipeline's repo, a fresh git clone
pulls everything, and then nothing is left to run (`dvc status` clean, `dvc repro` runs no stage)."""
from __future__ import annotations

from tests.conftest import run


def test_push_clone_pull_then_repro_runs_nothing(pipeline_repo, tmp_path):
    repo, env, _ = pipeline_repo
    remote = tmp_path / "dvc-remote"
    # `make remote` as `make run` calls it (the venv is this one: don't build another).
    make_remote = ["make", "--no-print-directory", "-o", ".venv/.installed", "remote", f"DVC_REMOTE={remote}"]
    run(make_remote, repo, env)
    listed = run(["dvc", "remote", "list"], repo, env).stdout
    assert str(remote) in "".join(listed.split()), listed  # DVC wraps a long path at the terminal's width
    run(["dvc", "push"], repo, env)
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"
    # What a run leaves for git (dvc.lock, data.dvc, uncached reports) is committed, as a user would.
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "pipeline results", "--allow-empty"], repo, env)  # test_queue may have committed

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    run(make_remote, clone, env)  # a second clone on this machine finds the same default remote
    run(["dvc", "pull", "data.dvc", "dvc.yaml"], clone, env)  # the data and the default pipeline (no study here)
    assert (clone / "data/synthetic/essnet/seed0/images.npy").exists() and (clone / "models/unet/models.json").exists()
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], clone, env).stdout
    assert "Running stage" not in run(["dvc", "repro"], clone, env).stdout
