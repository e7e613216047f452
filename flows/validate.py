"""Stage `validate`: Great Expectations checks on the prepared slices; fails the pipeline on bad data."""
from __future__ import annotations

import mlflow
from prefect import flow

from flows.common import link_run, start_stage
from liversynth.data.validation import DataValidationError, validate_prepared
from liversynth.paths import DATA_DOCS, PREPARED, VALIDATION
from liversynth.tracking.runs import stage_run
from liversynth.utils.files import write_json


@flow(name="validate")
def validate_flow() -> dict:
    params = start_stage()
    with stage_run(params, "validate", ("validate",), on_open=link_run):
        try:
            report = validate_prepared(params, PREPARED, DATA_DOCS)
        except DataValidationError as err:
            mlflow.set_tag("validation", "failed")
            mlflow.log_text(str(err), "validation_errors.txt")
            raise
        finally:
            if DATA_DOCS.exists():  # the Checkpoint's Data Docs, failed checks included
                mlflow.log_artifacts(str(DATA_DOCS), "data_docs")
        mlflow.log_metric("checks_passed", sum(c["success"] for c in report["checks"]))
        mlflow.log_dict(report, "validation.json")
    write_json(VALIDATION, report)
    return report


if __name__ == "__main__":
    validate_flow()
