"""Stage `register`: register the U-Net and the CT->MRI generator of this run as one unit; move
`champion` behind the gate. The U-Net is the mix's when it beats real only by the margin, else the
real-only one (tracking.registry.supported_arm), so a first run always ends with a champion.

Both are pyfunc models that carry their preprocessing (liversynth.inference.pyfunc), with their
state_dicts as artifacts; the current champion is loaded weights-only (never unpickled) and re-scored
on today's test split, paired patient by patient, when that split is disjoint from its training
patients. A rerun after any failure completes the same unit (tracking.registry.register_unit).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.tracking import MlflowClient
from prefect import flow, get_run_logger

from flows.common import link_run, start_stage
from liversynth import paths
from liversynth.config import Params
from liversynth.data.slice_set import SliceSet
from liversynth.evaluation.metrics import per_patient_iou
from liversynth.inference.pyfunc import log_pyfunc, raw_like
from liversynth.inference.spec import ModelSpec
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.model_card import model_description, version_card
from liversynth.tracking.registry import (CHAMPION, UnitMember, alias_version, challenge_champion, register_unit,
                                          supported_arm)
from liversynth.tracking.runs import reopened_run, stage_run
from liversynth.models.generator import load_generator
from liversynth.models.unet import load_unet
from liversynth.utils.files import write_json
from liversynth.utils.hashing import fingerprint

def _members(params: Params, challenger: dict, metrics: dict, splits: dict, test: SliceSet, ct: SliceSet,
             shared: dict, training: dict, specs: dict) -> list[UnitMember]:
    """The unit's two models: how each is logged (pyfunc + state_dict), its tags and model card."""
    cfg, prep = params.register, params.prepare
    spacing = (float(params.data.spacing_mm or 1.0),) * 2
    unet = load_unet(challenger["path"], params.unet, torch.device("cpu"))
    gen_seed = _generator_seed(challenger, params)
    generator = load_generator(paths.generator_path("essnet", gen_seed), params.essnet, torch.device("cpu"))
    gen_run = _generator_run(gen_seed)
    train = json.loads(shared["data.train_patients"])

    def card(kind: str):
        return lambda decision: version_card(
            kind, metrics, dataset=params.data.dataset, train_patients=train, test_patients=splits["mri_test"],
            test_split_hash=shared["data.test_split_hash"], decision=decision, training=training)

    return [
        UnitMember(cfg.unet_name, lambda: _in_run(challenger["run_id"], lambda: log_pyfunc(
                       unet, specs["unet"], raw_like(test.images[:2], "mri", prep), spacing, "unet").model_uri),
                   {**shared, **training}, card("unet"), model_description("unet")),
        UnitMember(cfg.generator_name, lambda: _in_run(gen_run, lambda: log_pyfunc(
                       generator, specs["ct2mri"], raw_like(ct.images[:2], "ct", prep), spacing,
                       "ct2mri_generator").model_uri),
                   {**shared, "training_run_id": gen_run or "", "generator_seed": str(gen_seed)}, card("ct2mri"),
                   model_description("ct2mri")),
    ]


def _generator_seed(challenger: dict, params: Params) -> int:
    seed = challenger.get("generator_seed")
    return int(params.essnet.seeds[0] if seed is None else seed)


def _generator_run(seed: int) -> str | None:
    """The newest finished training run of this EssNet generator seed, where its model is logged."""
    found = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        f"attributes.run_name = 'train_essnet[essnet seed={seed}]' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return found[0].info.run_id if found else None


def _in_run(run_id: str | None, log: Callable[[], str]) -> str:
    """Log a model in its training run (reopened, then finished again), else in the active run."""
    try:
        training = None if run_id is None else mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:  # a training run this store does not hold
        training = None
    if training is None or training.info.lifecycle_stage != "active":
        return log()
    with reopened_run(training):
        return log()


@flow(name="register")
def register_flow() -> dict:
    params = start_stage()
    cfg, prep = params.register, params.prepare
    models = json.loads(paths.UNET_MODELS.read_text())
    metrics = json.loads(paths.METRICS.read_text())
    splits = {k: v["patients"] for k, v in json.loads((paths.PREPARED / "manifest.json").read_text())["splits"].items()}
    arm = supported_arm(metrics.get("gain_iou"), cfg.margin)  # the mix only when it beats real only
    challenger = max((m for m in models if m["arm"] == arm), key=lambda m: m["val_iou"])
    test, ct = SliceSet.load(paths.PREPARED / "mri_test"), SliceSet.load(paths.PREPARED / "ct_train")
    train = {"mri": sorted(splits["mri_train"]), "ct": sorted(splits["ct_train"])}
    data = {"train_patients": tuple(f"{m}/{p}" for m, ps in train.items() for p in ps),
            "test_split_hash": fingerprint(sorted(splits["mri_test"]))}
    specs = {"unet": ModelSpec.for_unet(prep, params.data.spacing_mm, params.unet, **data),
             "ct2mri": ModelSpec.for_generator(prep, params.data.spacing_mm, params.essnet, **data)}
    unit = fingerprint(challenger["run_id"], Path(challenger["path"]),
                       paths.generator_path("essnet", _generator_seed(challenger, params)))
    with stage_run(params, "register", ("register",), unit=unit, on_open=link_run) as run:
        client = MlflowClient()  # after stage_run: it points MLflow at the project's store
        ours = per_patient_iou(load_unet(challenger["path"], params.unet, torch.device("cpu")), test)
        training = {"training_run_id": challenger["run_id"], "arm": arm, "ratio": f"{challenger.get('ratio', 0):g}",
                    "seed": str(challenger["seed"]), "test_iou": f"{float(np.mean(list(ours.values()))):.6f}",
                    "val_iou": f"{challenger['val_iou']:.6f}"}
        shared = {**{k: v for k, v in run.data.tags.items() if not k.startswith(("mlflow.", "machine.", "liversynth."))},
                  "synthetic_md5": lock_hash(paths.synthetic_root("essnet")),
                  "data.test_split_hash": data["test_split_hash"], "data.train_patients": json.dumps(train)[:4000],
                  "data.train_patients_hash": fingerprint(train),
                  **{f"params.{s}": json.dumps(params.section(s)) for s in ("unet", "tune", "essnet", "prepare")}}

        def decide():
            return challenge_champion(client, cfg.unet_name, test, ours, specs["unet"].preprocessing(),
                                      metrics.get("gain_iou"), margin=cfg.margin,
                                      n_bootstrap=params.evaluate.n_bootstrap, ci=params.evaluate.ci, seed=params.seed,
                                      baseline_arm=arm != (metrics.get("gain_iou") or {}).get("arm", "mix"))

        members = _members(params, challenger, metrics, splits, test, ct, shared, training, specs)
        versions, decision = register_unit(client, unit, members, decide)
        if not decision.promote:
            get_run_logger().warning("champion not moved: %s (%s)", decision.reason, decision.code)
        mlflow.log_dict(decision.as_tags(), "gate.json")
        report = {"unet": {"name": cfg.unet_name, "version": versions[cfg.unet_name], "arm": arm},
                  "generator": {"name": cfg.generator_name, "version": versions[cfg.generator_name]},
                  "unit": unit, "promoted": decision.promote, "reason": decision.reason, "code": decision.code,
                  "champion_version": alias_version(client, cfg.unet_name, CHAMPION),
                  "test_iou_mix_mean_over_seeds": metrics["test"]["mix"]["iou"]}
    write_json(paths.REGISTRY_REPORT, report)
    return report


if __name__ == "__main__":
    register_flow()
