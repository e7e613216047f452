"""Model-registry policy: who becomes `challenger`, and when `champion` moves.

The registered U-Net is the best segmenter the pre-registered evidence supports (`supported_arm`): the
mix's U-Net when metrics.json's primary gain (`gain_iou`, mix minus real only) clears the margin, else
the real-only U-Net. A new model version always becomes `challenger`. `champion` moves to it only when
the paired gain in test IoU over the current champion (bootstrapped over test patients) is positive and
its lower CI bound clears a margin; with no champion yet, the supported arm's U-Net becomes champion
(`first_beats_baseline` for the mix, `first_real_only` for the real-only U-Net), so the first run always
ends with a champion. The decision, its numbers and a reason code are tags on the version.

The U-Net and the CT->MRI generator of one pipeline run are one *unit*, keyed by the tag
`liversynth.unit`: `register_unit` finds existing versions by that tag before creating any, so a
rerun after a kill completes (repairs) the unit instead of adding duplicate versions, and reuses the
decision already recorded on it. Every version is created with its unit tag in the same call.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from liversynth.data.slice_set import SliceSet
from liversynth.evaluation.metrics import paired_bootstrap, per_patient_iou
from liversynth.inference.loading import load_registered

__all__ = ["CHALLENGER", "CHAMPION", "COMPLETE_TAG", "GateDecision", "LINEAGE_KEYS", "UNIT_TAG", "UnitMember",
           "alias_version", "apply_decision", "challenge_champion", "decision_from_tags", "find_unit_version", "first_baseline_gate", "first_gate",
           "gate",
           "lineage", "promote", "refuse", "register_unit", "supported_arm"]

CHAMPION, CHALLENGER = "champion", "challenger"
UNIT_TAG, COMPLETE_TAG = "liversynth.unit", "liversynth.unit_complete"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    gain_mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    margin: float = 0.0
    code: str = ""  # machine-readable reason: beats_champion, not_better, champion_unloadable, ...

    def as_tags(self) -> dict[str, str]:
        tags = {"gate.promote": str(self.promote).lower(), "gate.reason": self.reason[:4000],
                "gate.margin": f"{self.margin:g}", **({"gate.code": self.code} if self.code else {})}
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
    return GateDecision(ok, why, gain["mean"], gain["ci_low"], gain["ci_high"], margin,
                        "beats_champion" if ok else "not_better")


def first_gate(baseline_gain: dict[str, float] | None, margin: float) -> GateDecision:
    """No champion yet: promote only if the primary gain over the real-only baseline (metrics.json
    `gain_iou`: mean, ci_low, ci_high) is positive with its lower bound above `margin`."""
    if not baseline_gain or not {"mean", "ci_low", "ci_high"} <= set(baseline_gain):
        return refuse("no champion yet, and metrics.json has no gain_iou {mean, ci_low, ci_high} to gate on",
                      margin, "no_baseline_gain")
    d = gate(baseline_gain, margin)
    return GateDecision(d.promote, f"no champion yet; over the real-only baseline: {d.reason}", d.gain_mean,
                        d.ci_low, d.ci_high, margin, "first_beats_baseline" if d.promote else "first_not_better")


def supported_arm(baseline_gain: dict[str, Any] | None, margin: float) -> str:
    """The arm whose U-Net is registered: metrics.json `gain_iou`'s arm (the mix) when its gain over the
    baseline passes `first_gate`, else that baseline (real only): synthetic data that does not help
    does not make the real-only U-Net any worse a segmenter."""
    gain = baseline_gain or {}
    arm, baseline = str(gain.get("arm", "mix")), str(gain.get("baseline", "real_only"))
    return arm if first_gate(baseline_gain, margin).promote else baseline


def first_baseline_gate(baseline_gain: dict[str, Any] | None, margin: float) -> GateDecision:
    """No champion yet, and the registered U-Net is the baseline's (the mix did not clear the margin):
    it becomes champion, with the comparison that made it so."""
    first = first_gate(baseline_gain, margin)
    if first.code == "no_baseline_gain" or baseline_gain is None:
        return first
    d = gate(baseline_gain, margin)
    return GateDecision(True, f"no champion yet; the mix does not beat the real-only baseline ({d.reason}), so the "
                        "real-only U-Net is champion", d.gain_mean, d.ci_low, d.ci_high, margin, "first_real_only")


def refuse(reason: str, margin: float, code: str) -> GateDecision:
    return GateDecision(False, reason, margin=margin, code=code)


def decision_from_tags(tags: dict[str, str]) -> GateDecision | None:
    """The decision recorded on a version (for completing a half-made unit), or None."""
    if tags.get("gate.promote") not in ("true", "false"):
        return None
    num = {k: float(tags[f"gate.{k}"]) if f"gate.{k}" in tags else None for k in ("gain_mean", "ci_low", "ci_high")}
    return GateDecision(tags["gate.promote"] == "true", tags.get("gate.reason", ""), num["gain_mean"],
                        num["ci_low"], num["ci_high"], float(tags.get("gate.margin", 0.0)), tags.get("gate.code", ""))


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


@dataclass(frozen=True)
class UnitMember:
    """One registered model of a unit: its name, how to log it, its tags and description."""

    name: str
    log: Callable[[], str]  # logs the model in the active run; returns its model URI
    tags: dict[str, str] = field(default_factory=dict)
    describe: Callable[[GateDecision], str] | None = None  # the version's description (model card)
    model_description: str = ""


def find_unit_version(client: MlflowClient, name: str, unit: str) -> str | None:
    """The (lowest) version of `name` that belongs to `unit`, if any."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    mine = sorted(int(v.version) for v in versions if v.tags.get(UNIT_TAG) == unit)
    return str(mine[0]) if mine else None


def register_unit(client: MlflowClient, unit: str, members: Sequence[UnitMember],
                  decide: Callable[[], GateDecision]) -> tuple[dict[str, str], GateDecision]:
    """Register (or complete) one unit: every member gets a version tagged `unit`, the gate decision
    (the one already recorded on the first member, else `decide()`), its tags, descriptions and the
    aliases the decision calls for, then `liversynth.unit_complete`. Idempotent: rerun it after any
    failure and it finishes the same unit. Returns ({name: version}, decision)."""
    versions: dict[str, str] = {}
    for member in members:
        version = find_unit_version(client, member.name, unit)
        if version is None:
            uri = member.log()
            version = str(mlflow.register_model(uri, member.name, tags={UNIT_TAG: unit}).version)
        versions[member.name] = version
    lead = members[0].name
    decision = decision_from_tags(dict(client.get_model_version(lead, versions[lead]).tags)) or decide()
    for member in members:  # the lead's decision tags first: a kill after them reuses the decision
        version = versions[member.name]
        links = {"liversynth.unit_versions": json.dumps(versions, sort_keys=True)}
        for key, value in {**decision.as_tags(), **member.tags, **links}.items():
            client.set_model_version_tag(member.name, version, key, value)
        if member.describe is not None:
            client.update_model_version(member.name, version, description=member.describe(decision))
        if member.model_description:
            client.update_registered_model(member.name, description=member.model_description)
    for member in members:
        apply_decision(client, member.name, versions[member.name], decision)
    for member in members:
        client.set_model_version_tag(member.name, versions[member.name], COMPLETE_TAG, "true")
    return versions, decision


def challenge_champion(client: MlflowClient, name: str, test: SliceSet, ours: dict[str, float],
                       preprocessing: dict, baseline_gain: dict[str, float] | None, *, margin: float,
                       n_bootstrap: int, ci: float, seed: int = 0, baseline_arm: bool = False) -> GateDecision:
    """The gate's decision for a challenger scoring `ours` (per-patient test IoU) on `test`; `baseline_arm`:
    the challenger is the real-only U-Net (`supported_arm`). Never raises: a champion that cannot be
    loaded (or is not weights-only: never unpickled), was trained on a test patient, expects other
    preprocessing, or fails to score is a refusal with its reason."""
    version = alias_version(client, name, CHAMPION)
    if version is None:
        return first_baseline_gate(baseline_gain, margin) if baseline_arm else first_gate(baseline_gain, margin)
    try:
        champion = load_registered(f"models:/{name}@{CHAMPION}")
    except Exception as err:  # noqa: BLE001  (any failure to load is the gate's refusal, not a crash)
        return refuse(f"champion v{version} cannot be loaded: {err}", margin, "champion_unloadable")
    test_patients = sorted({str(p) for p in np.unique(test.patients)})
    overlap = sorted(set(champion.spec.train_patients) & {f"mri/{p}" for p in test_patients})
    if overlap:
        return refuse(f"champion v{version} was trained on {len(overlap)} patient(s) of this test split "
                      f"({', '.join(overlap[:5])}); it is only re-scored on a disjoint test split",
                      margin, "test_not_disjoint")
    if champion.spec.preprocessing() != preprocessing:
        return refuse(f"champion v{version} expects other preprocessing ({champion.spec.preprocessing()}) "
                      f"than this test split ({preprocessing})", margin, "preprocessing_differs")
    try:
        theirs = per_patient_iou(champion.module, test)
        shared = sorted(set(ours) & set(theirs))
        if not shared:
            raise ValueError("no test patient scored by both models")
        gain = paired_bootstrap(np.array([ours[p] - theirs[p] for p in shared]), n_bootstrap, ci, seed=seed)
    except Exception as err:  # noqa: BLE001
        return refuse(f"scoring champion v{version} failed: {type(err).__name__}: {err}", margin, "scoring_failed")
    d = gate(gain, margin)
    return GateDecision(d.promote, f"vs champion v{version}: {d.reason}", d.gain_mean, d.ci_low, d.ci_high,
                        margin, d.code)
