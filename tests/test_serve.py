"""`mlflow models serve` of the registered champion answers a real REST request with a mask."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from tests.champion_models import box_volume, register, train_box_unet, unet_spec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rest_server_returns_a_mask(mlflow_store, tmp_path):
    register(train_box_unet(), unet_spec())
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    mlflow_cli = str(Path(sys.executable).parent / "mlflow")
    server = subprocess.Popen([mlflow_cli, "models", "serve", "-m", "models:/liversynth-unet@champion",
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                              cwd=tmp_path, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if requests.get(f"{url}/ping", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            raise AssertionError(f"server not up: {(tmp_path / 'serve.log').read_text()[-3000:]}")
        image, label = box_volume(21, (3, 44, 38), (slice(4, 18), slice(20, 34)))
        reply = requests.post(f"{url}/invocations", timeout=60,
                              json={"inputs": image.tolist(), "params": {"row_spacing_mm": 1.5, "col_spacing_mm": 1.5}})
        assert reply.status_code == 200, reply.text[:2000]
        mask = np.asarray(reply.json()["predictions"])
        assert mask.shape == image.shape and set(np.unique(mask)) <= {0, 1}
        hit = (mask > 0) & (label > 0)
        assert hit.sum() / ((mask > 0) | (label > 0)).sum() > 0.7
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
