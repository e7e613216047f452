"""Secure team set-up: a basic-auth MLflow server on 127.0.0.1 refuses an unauthenticated write, while
the pipeline's own tracking helpers, given credentials through the environment, log a run and register
a model (docs/team_server.md)."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from liversynth.config import Params
from tests.conftest import REPO, wait_until_healthy


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("auth")
    password = secrets.token_urlsafe(16)
    ini = tmp / "auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{tmp / 'auth.db'}\n"
                   f"admin_username = admin\nadmin_password = {password}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   "auth_cache_ttl_seconds = 300\n")  # PBKDF2 once per credential, not per request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                               "--artifacts-destination", str(tmp / "artifacts")],
                              cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/health", server, 180, lambda: "basic-auth MLflow server did not start:\n"
                           + (tmp / "server.log").read_text()[-3000:])
        yield url, password, tmp
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # a throwaway server: nothing to shut down cleanly
        server.wait()
        log.close()


def test_unauthenticated_write_is_refused(auth_server):
    url, _, _ = auth_server
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/create", method="POST",
                                     data=json.dumps({"name": "intruder"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_credentials_from_the_environment_log_and_register(auth_server, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from liversynth.tracking.runs import stage_run

    url, password, _ = auth_server
    monkeypatch.chdir(tmp_path)  # the experiment's artifact_dir resolves here, not in the repository
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    params = Params.from_yaml(REPO / "tests" / "tiny_params.yaml")
    try:
        with stage_run(params, "auth_check", ("unet",)) as run:
            mlflow.log_metric("val_iou", 0.5)
            mlflow.log_text("weights go here", "model/README.txt")
        client = MlflowClient()
        client.create_registered_model("liversynth-auth-check")
        version = client.create_model_version("liversynth-auth-check", f"{run.info.artifact_uri}/model",
                                              run_id=run.info.run_id)
        client.set_registered_model_alias("liversynth-auth-check", "challenger", version.version)
        assert client.get_model_version_by_alias("liversynth-auth-check", "challenger").run_id == run.info.run_id
        assert client.get_run(run.info.run_id).data.params["unet.steps"] == "6"
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri("")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(mlflow.exceptions.MlflowException, match="401|Unauthorized|credentials"):
        MlflowClient(url).create_experiment("with-a-wrong-password")
