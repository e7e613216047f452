"""Model-registry policy: who becomes `challenger`, and when `champion` moves.

A new model version always becomes `challenger`. `champion` moves to it only when the paired gain
in test IoU over the current champion (bootstrapped over test patients) is positive and its lower
CI bound clears a margin; the decision and its numbers are written on the version as tags.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

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
