"""PNGs of the MLflow UI for the README: the experiment page, the EssNet generator seeds compared, two
pipeline runs compared (when two have results), two queued DVC experiments compared (when there are),
and the registered U-Net's page, taken with headless Chromium against `mlflow ui` on the local store.

    python scripts/screenshots.py --out reports/ui        # `make screenshots`
    python scripts/screenshots.py --out reports/ui --live # during `make run`: a generator run as it trains

`--live` waits for a RUNNING generator run, reads its loss history through the REST API twice a minute
apart (reports/ui/live_generator_run.json: the counts must grow) and shoots its page with the partial
curves (live_generator_run.png).

Needs a Chromium (`apt-get install -y chromium`); the pipeline must have run (two pipeline runs
for the comparison: e.g. `make run` then `dvc exp run -S unet.steps=...`).
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The browser reaches the server on 127.0.0.1 under this name: on localhost MLflow 3.17 opens its
# assistant panel over half the page on first load.
HOST = "mlflow-ui.test"
# Model-training view (sidebar, run table) rather than MLflow 3's GenAI default.
VIEW = "workflowType=machine_learning"
# name -> window height: the comparison is tall (params and metrics tables below the plot).
HEIGHTS = {"experiment": 1000, "compare_generator_seeds": 2400, "compare_pipelines": 2400,
           "compare_queued_experiments": 2400, "registered_model": 1000, "live_generator_run": 1400}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"mlflow ui exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"mlflow ui did not answer {url} within {timeout:.0f} s")


def api(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _compare(ui: str, exp_id: str, runs: list[dict]) -> str:
    ids = json.dumps([r["info"]["run_id"] for r in runs]).replace(" ", "")
    return (f"{ui}/#/compare-runs?runs={urllib.parse.quote(ids)}"
            f"&experiments={urllib.parse.quote(json.dumps([exp_id]))}&{VIEW}")


def _search(base: str, exp_id: str, where: str, n: int) -> list[dict]:
    return api(base, "runs/search", {"experiment_ids": [exp_id], "filter": where,
                                     "order_by": ["attributes.start_time DESC"], "max_results": n}).get("runs", [])


def pages(base: str, experiment: str, model: str) -> dict[str, str]:
    """name -> UI URL: the experiment's runs; the EssNet generator seeds of the latest run compared
    (their losses side by side); the two latest pipelines with results compared; the model."""
    exp = api(base, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": experiment}))
    exp_id = exp["experiment"]["experiment_id"]
    ui = base.replace("127.0.0.1", HOST)
    out = {"experiment": f"{ui}/#/experiments/{exp_id}/runs?{VIEW}"}
    seeds = _search(base, exp_id, "tags.kind = 'generator' and tags.variant = 'essnet'", 50)
    def parent(run: dict) -> str | None:
        return next((t["value"] for t in run["data"]["tags"] if t["key"] == "mlflow.parentRunId"), None)

    if seeds:  # the newest stage run's seeds
        out["compare_generator_seeds"] = _compare(ui, exp_id, [r for r in seeds if parent(r) == parent(seeds[0])])
    pipelines = _search(base, exp_id, "tags.kind = 'pipeline' and tags.headline = 'true'", 2)
    if len(pipelines) == 2:
        out["compare_pipelines"] = _compare(ui, exp_id, pipelines)
    else:
        print(f"{len(pipelines)} pipeline run(s) with results: no pipeline comparison (e.g. `dvc exp run -S ...`)")
    queued = _search(base, exp_id, "tags.kind = 'pipeline' and tags.headline = 'true' and tags.`dvc.exp_name` != ''", 2)
    if len(queued) == 2:
        out["compare_queued_experiments"] = _compare(ui, exp_id, queued)
    out["registered_model"] = f"{ui}/#/models/{urllib.parse.quote(model)}?{VIEW}"
    return out


def live_generator_run(base: str, experiment: str, out: Path, wait_s: float = 1800) -> str:
    """The UI URL of a RUNNING generator run, after checking through the REST API that its losses grew
    between two reads a minute apart (the reads go to out/live_generator_run.json)."""
    exp_id = api(base, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": experiment}))[
        "experiment"]["experiment_id"]
    deadline = time.monotonic() + wait_s
    while True:
        running = _search(base, exp_id, "tags.kind = 'generator' and attributes.status = 'RUNNING'", 10)
        if running or time.monotonic() > deadline:
            break
        time.sleep(5)
    if not running:
        sys.exit(f"no RUNNING generator run within {wait_s:.0f} s")
    run_id = running[0]["info"]["run_id"]

    def read() -> dict:
        history = api(base, "metrics/get-history?" + urllib.parse.urlencode({"run_id": run_id, "metric_key": "total"}))
        run = api(base, "runs/get?" + urllib.parse.urlencode({"run_id": run_id}))["run"]
        steps = [int(m.get("step", 0)) for m in history.get("metrics", [])]
        return {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": run["info"]["status"],
                "n_points": len(steps), "last_step": max(steps, default=0)}

    first = read()
    time.sleep(60)
    second = read()
    record = {"run_id": run_id, "run_name": running[0]["info"].get("run_name"), "metric": "total",
              "reads": [first, second], "grew": second["n_points"] > first["n_points"]}
    (out / "live_generator_run.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    ui = base.replace("127.0.0.1", HOST)
    return f"{ui}/#/experiments/{exp_id}/runs/{run_id}/model-metrics?{VIEW}"


def shoot(browser: str, url: str, png: Path, height: int = 1000, budget_ms: int = 20000) -> None:
    """A PNG of `url`; `budget_ms` of virtual time for the page's scripts (charts load their metric
    histories after the page: a live run's page on a busy machine needs more)."""
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", f"--window-size=1600,{height}", f"--virtual-time-budget={budget_ms}",
                    f"--host-resolver-rules=MAP {HOST} 127.0.0.1", f"--screenshot={png}", url],
                   check=True, capture_output=True, timeout=180)
    print(f"{png}  <-  {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("reports/ui"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--store", default=None, help="backend store URI (default: params.yaml's)")
    parser.add_argument("--live", action="store_true", help="a RUNNING generator run (during make run)")
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        sys.exit("no Chromium found: apt-get update && apt-get install -y chromium")
    store = args.store or params.get("mlflow", {}).get("tracking_uri", "sqlite:///mlruns/mlflow.db")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(["mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
                             "--port", str(port), "--allowed-hosts", f"127.0.0.1:{port},{HOST}:{port}",
                             "--cors-allowed-origins", f"http://{HOST}:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"{base}/health", proc)
        args.out.mkdir(parents=True, exist_ok=True)
        experiment = params.get("mlflow", {}).get("experiment", "liversynth")
        model = params.get("register", {}).get("unet_name", "liversynth-unet")
        shots = ({"live_generator_run": live_generator_run(base, experiment, args.out)} if args.live
                 else pages(base, experiment, model))
        for name, url in shots.items():
            shoot(browser, url, args.out / f"{name}.png", HEIGHTS.get(name, 1000), 90000 if args.live else 20000)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
