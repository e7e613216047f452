"""Stage `oracle`: the perfect CT->MRI translation of every CT training patient (phantom only), data/oracle/.

It is what the `mix_oracle` and `oracle_only` arms train on (the ceiling of what translation can add)
and what translation fidelity is measured against. On other datasets the folder holds only
oracle.json, which says why there is no oracle; those arms are then absent.
"""
from __future__ import annotations

import mlflow
from prefect import flow

from flows.common import link_run, start_stage
from liversynth import paths
from liversynth.data.oracle import RERENDER_STREAM, oracle_for
from liversynth.data.oracle_set import oracle_absent_reason, save_oracle
from liversynth.data.slice_set import SliceSet
from liversynth.synthesis.fidelity import fidelity_references, probe_index
from liversynth.tracking.runs import stage_run
from liversynth.utils.files import write_json


@flow(name="oracle")
def oracle_flow() -> dict:
    params = start_stage()
    reason = oracle_absent_reason(params.data.dataset)
    oracle, references = None, {}
    if reason is None:
        ct = SliceSet.load(paths.PREPARED / "ct_train")
        oracle = oracle_for(ct, params.phantom, params.prepare, params.data.spacing_mm)
        rerender = oracle_for(ct, params.phantom, params.prepare, params.data.spacing_mm, RERENDER_STREAM)
        probe = probe_index(len(ct))  # the slices every generator checkpoint is scored on
        references = fidelity_references(ct.select(probe), oracle.select(probe), rerender.select(probe))
    save_oracle(paths.ORACLE, oracle, reason)
    write_json(paths.ORACLE / "fidelity_references.json", references)
    summary = {"available": oracle is not None, "slices": 0 if oracle is None else len(oracle)}
    with stage_run(params, "oracle", ("phantom",), on_open=link_run):
        mlflow.log_metrics({"oracle_slices": summary["slices"],
                            **{f"reference_{name}_{k}": v for name, r in references.items() for k, v in r.items()}})
        mlflow.set_tag("oracle_available", str(summary["available"]).lower())
        if reason:
            mlflow.set_tag("oracle_absent_reason", reason)
    return summary


if __name__ == "__main__":
    oracle_flow()
