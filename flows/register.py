"""Stage `register`: register the U-Net and the CT->MRI generator; move `champion` behind the gate.

The current champion is re-scored on today's test split, so the comparison is paired patient by
patient even if the test data changed since it was registered.
"""
from __future__ import annotations

import json

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from prefect import flow

from flows.common import load_params
from liversynth import paths
from liversynth.data.slice_set import SliceSet
from liversynth.evaluation.metrics import paired_bootstrap, per_patient_iou
from liversynth.tracking.lineage import lock_hash
from liversynth.tracking.registry import CHAMPION, alias_version, apply_decision, gate
from liversynth.tracking.runs import stage_run
from liversynth.training.essnet import load_generator
from liversynth.training.unet import load_unet
from liversynth.utils.files import write_json


def _log_model(model: torch.nn.Module, example: np.ndarray, name: str, registered: str):
    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.as_tensor(example)).numpy()
    return mlflow.pytorch.log_model(model, name=name, registered_model_name=registered,
                                    signature=infer_signature(example, output), input_example=example)


@flow(name="register")
def register_flow() -> dict:
    params = load_params()
    cfg = params.register
    models = json.loads(paths.UNET_MODELS.read_text())
    metrics = json.loads(paths.METRICS.read_text())
    challenger = max((m for m in models if m["arm"] == "mix"), key=lambda m: m["val_iou"])
    test = SliceSet.load(paths.PREPARED / "mri_test")
    example = np.asarray(test.images[:2], dtype=np.float32)
    with stage_run(params, "register", ("register",)) as run:
        client = MlflowClient()  # after stage_run: it points MLflow at the project's store
        lineage = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        unet = load_unet(challenger["path"], params.unet, torch.device("cpu"))
        ours = per_patient_iou(unet, test)
        gain = None
        if alias_version(client, cfg.unet_name, CHAMPION) is not None:
            champion = mlflow.pytorch.load_model(f"models:/{cfg.unet_name}@{CHAMPION}", map_location="cpu")
            theirs = per_patient_iou(champion, test)
            shared = sorted(set(ours) & set(theirs))
            gain = paired_bootstrap(np.array([ours[p] - theirs[p] for p in shared]),
                                    params.evaluate.n_bootstrap, params.evaluate.ci, seed=params.seed)
        decision = gate(gain, cfg.margin)
        tags = {**lineage, "synthetic_md5": lock_hash(paths.synthetic_dir("essnet")),
                "training_run_id": challenger["run_id"],
                "ratio": f"{challenger['ratio']:g}", "seed": str(challenger["seed"]),
                "test_iou": f"{float(np.mean(list(ours.values()))):.6f}",
                "val_iou": f"{challenger['val_iou']:.6f}",
                **{f"params.{s}": json.dumps(params.section(s)) for s in ("unet", "tune", "essnet")}}
        unet_info = _log_model(unet, example, "unet", cfg.unet_name)
        apply_decision(client, cfg.unet_name, unet_info.registered_model_version, decision, tags)
        generator = load_generator(paths.generator_path("essnet"), params.essnet)
        gen_info = _log_model(generator, example, "ct2mri_generator", cfg.generator_name)
        # The generator earns its place through the U-Net it produced: it follows the same decision.
        apply_decision(client, cfg.generator_name, gen_info.registered_model_version, decision,
                       {**lineage, "unet_version": str(unet_info.registered_model_version)})
        mlflow.log_dict(decision.as_tags(), "gate.json")
        report = {"unet": {"name": cfg.unet_name, "version": unet_info.registered_model_version},
                  "generator": {"name": cfg.generator_name, "version": gen_info.registered_model_version},
                  "promoted": decision.promote, "reason": decision.reason,
                  "champion_version": alias_version(client, cfg.unet_name, CHAMPION),
                  "test_iou_mix_mean_over_seeds": metrics["test"]["mix"]["iou"]}
    write_json(paths.REGISTRY_REPORT, report)
    return report


if __name__ == "__main__":
    register_flow()
