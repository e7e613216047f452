"""Prefect flows, one per pipeline stage; `dvc.yaml` runs them as `python -m flows.<stage>`."""
import os
from pathlib import Path

# Quiet, offline-safe defaults; set before Prefect, MLflow or GX are imported.
_ROOT = Path(__file__).resolve().parent.parent
for key, value in {
    "PREFECT_HOME": str(_ROOT / ".prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}.items():
    os.environ.setdefault(key, value)
