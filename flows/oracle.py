"""Stage `oracle`: the perfect CT->MRI translation of every CT training patient (phantom only), data/oracle/.

It is what the `mix_oracle` and `oracle_only` arms train on (the ceiling of what translation can add)
and what translation fidelity is measured against. On other datasets the folder holds only
oracle.json, which says why there is no oracle; those arms are then absent.
"""
from __future__ import annotations

import mlflow
from prefect import flow

from flows.common import load_params, stage_run
from liversynth import paths
from liversynth.data.oracle import oracle_for
from liversynth.data.oracle_set import oracle_absent_reason, save_oracle
from liversynth.data.slice_set import SliceSet


@flow(name="oracle")
def oracle_flow() -> dict:
    params = load_params()
    reason = oracle_absent_reason(params.data.dataset)
    oracle = None
    if reason is None:
        oracle = oracle_for(SliceSet.load(paths.PREPARED / "ct_train"), params.phantom, params.prepare,
                            params.data.spacing_mm)
    save_oracle(paths.ORACLE, oracle, reason)
    summary = {"available": oracle is not None, "slices": 0 if oracle is None else len(oracle)}
    with stage_run(params, "oracle", ("phantom",)):
        mlflow.log_metrics({"oracle_slices": summary["slices"]})
        mlflow.set_tag("oracle_available", str(summary["available"]).lower())
        if reason:
            mlflow.set_tag("oracle_absent_reason", reason)
    return summary


if __name__ == "__main__":
    oracle_flow()
