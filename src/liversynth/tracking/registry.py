"""Model-registry policy: who becomes `challenger`, and when `champion` moves.

A new model version always becomes `challenger`. `champion` moves to it only when the paired gain
in test IoU over the current champion (bootstrapped over test patients) is positive and its lower
CI bound clears a margin; the decision and its numbers are written on the version as tags.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

__all__ = ["GateDecision", "LINEAGE_KEYS", "alias_version", "apply_decision", "gate", "lineage", "promote"]

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    gain_mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    margin: float = 0.0

    def as_tags(self) -> dict[str, str]:
        tags = {"gate.promote": str(self.promote).lower(), "gate.reason": self.reason,
                "gate.margin": f"{self.margin:g}"}
        for key in ("gain_mean", "ci_low", "ci_high"):
            value = getattr(self, key)
            if value is not None:
                tags[f"gate.{key}"] = f"{value:.6f}"
        return tags


def gate(gain: dict[str, float] | None, margin: float) -> GateDecision:
    """`gain` is a paired_bootstrap result of challenger minus champion, or None without a champion."""
    if gain is None:
        return GateDecision(True, "no champion yet", margin=margin)
    ok = gain["mean"] > 0 and gain["ci_low"] > margin
    why = (f"gain {gain['mean']:+.4f} IoU, CI low {gain['ci_low']:+.4f} "
           f"{'>' if gain['ci_low'] > margin else '<='} margin {margin:g}")
    return GateDecision(ok, why, gain["mean"], gain["ci_low"], gain["ci_high"], margin)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def apply_decision(client: MlflowClient, name: str, version: str, decision: GateDecision,
                   extra_tags: dict[str, str] | None = None) -> None:
    """Tag the version with the decision and move the aliases it calls for."""
    for key, value in {**decision.as_tags(), **(extra_tags or {})}.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)


LINEAGE_KEYS = ("git_commit", "data_dvc_md5", "synthetic_md5", "training_run_id", "dataset", "ratio", "seed",
                "test_iou", "val_iou")


def lineage(client: MlflowClient, name: str, alias: str) -> dict[str, str]:
    """Where the model behind `name@alias` came from: code, data, params, the run that trained it, the gate."""
    version = client.get_model_version_by_alias(name, alias)
    tags = dict(version.tags)
    out = {"model": f"{name}@{alias}", "version": str(version.version), "registering_run_id": str(version.run_id)}
    out.update({k: tags[k] for k in LINEAGE_KEYS if k in tags})
    out.update({k: v for k, v in sorted(tags.items()) if k.startswith(("params.", "gate."))})
    return out


def promote(client: MlflowClient, name: str, version: str | None = None, force: bool = False) -> str:
    """Move `champion` to `version` (default: the challenger) if its gate passed, or when forced by a person."""
    version = version or alias_version(client, name, CHALLENGER)
    if version is None:
        raise ValueError(f"{name}: no version given and no '{CHALLENGER}' alias")
    passed = client.get_model_version(name, version).tags.get("gate.promote") == "true"
    if not passed and not force:
        reason = client.get_model_version(name, version).tags.get("gate.reason", "no gate decision recorded")
        raise ValueError(f"{name} v{version} did not pass the gate ({reason}); use --force to override")
    if not passed:
        client.set_model_version_tag(name, version, "gate.manual_override", "true")
    client.set_registered_model_alias(name, CHAMPION, version)
    return str(version)
