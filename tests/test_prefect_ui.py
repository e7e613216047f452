"""What the Prefect UI shows, read from the session's Prefect test server: the pipeline flow streams
`dvc repro`'s output to its log line by line, stage flows link their MLflow runs, evaluate posts a table."""
from __future__ import annotations

import time

from tests.conftest import run


def test_pipeline_flow_streams_dvc_output_and_stage_flows_link_mlflow(pipeline_repo, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId

    repo, env, _ = pipeline_repo
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], repo, env).stdout  # so the flow's repro is a quick no-op
    monkeypatch.chdir(repo)
    monkeypatch.setenv("PATH", env["PATH"])
    from flows.pipeline import pipeline_flow

    state = pipeline_flow(return_state=True)
    assert state.is_completed(), state
    with get_client(sync_client=True) as client:
        flow_run_id = state.state_details.flow_run_id
        deadline = time.monotonic() + 60  # logs reach the API in background batches
        while True:
            logs = [log.message for log in
                    client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]
            if any("Data and pipelines are up to date" in m for m in logs) or time.monotonic() > deadline:
                break
            time.sleep(1)
        wanted = ["mlflow-train-essnet", "mlflow-synthesize-cyclegan", "mlflow-evaluate", "liversynth-test-scores"]
        found = {a.key: a for a in client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=wanted)))}
    assert any("running dvc repro" in m for m in logs), logs
    assert any("Data and pipelines are up to date" in m for m in logs), logs  # dvc's own line, streamed
    assert set(wanted) <= set(found), sorted(found)  # Prefect 3 stores link artifacts as markdown links
    assert all("/#/experiments/" in str(found[k].data) for k in wanted[:3])
    assert found["liversynth-test-scores"].type == "table"


def test_training_progress_lines_reach_the_prefect_logs(pipeline_repo, monkeypatch):
    """The training loops' progress lines (liversynth.training.loop) are in the Prefect logs of the stage
    flow runs that trained, naming the training, its step, rate and time left, as on the console."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTextSearch

    repo, _, first = pipeline_repo
    assert "essnet seed=0: step" in first.stderr + first.stdout  # the console has them too
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60
        while True:
            logs = [log.message for log in client.read_logs(LogFilter(text=LogFilterTextSearch(query="steps/s")),
                                                            limit=200)]
            if any(m.startswith("essnet seed=0: step") for m in logs) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert any(m.startswith("essnet seed=0: step") and "left" in m for m in logs), logs[:20]
    assert any(m.startswith("unet mix seed=") for m in logs), logs[:20]
