"""Great Expectations checks on the prepared slices, run before anything trains.

The slices are summarised into two small tables (one row per slice, one row per patient-split
pair) and each table is validated against an expectation suite by a GX Checkpoint, which also
builds the Data Docs site (HTML) when asked. A failure raises `DataValidationError` whose message
lists every broken expectation in plain words.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liversynth.config import Params
from liversynth.data.slice_set import SPLITS, SliceSet
from liversynth.utils.stage_errors import StageError

__all__ = ["DataValidationError", "summarise_slices", "validate_prepared"]

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network here; keep GX quiet


class DataValidationError(StageError, ValueError):
    """Prepared data broke one or more expectations."""


def summarise_slices(prepared_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per slice (range, finiteness, label values, liver area) and one per patient-split pair."""
    rows, patient_rows = [], []
    for split in SPLITS:
        folder = prepared_dir / split
        if not folder.exists():
            raise DataValidationError(f"{folder}: split folder missing; rerun the prepare stage")
        data = SliceSet.load(folder)
        for start in range(0, len(data), 256):  # chunks keep memory bounded on big cohorts
            img = np.asarray(data.images[start : start + 256])
            lab = np.asarray(data.labels[start : start + 256])
            finite = np.isfinite(img).all(axis=(1, 2, 3))
            safe = np.where(np.isfinite(img), img, 0.0)
            rows.append(pd.DataFrame({
                "split": split,
                "patient": data.patients[start : start + 256],
                "height": img.shape[2], "width": img.shape[3],
                "min": safe.min(axis=(1, 2, 3)), "max": safe.max(axis=(1, 2, 3)),
                "finite": finite,
                "label_max": lab.max(axis=(1, 2)), "label_min": lab.min(axis=(1, 2)),
                "has_liver": (lab == 1).any(axis=(1, 2)),
            }))
        modality = split.split("_")[0]  # CT and MRI ids may coincide (CHAOS): different people
        for patient in data.patient_ids():
            patient_rows.append({"split": split, "patient": f"{modality}/{patient}"})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(patient_rows)


def _suites(params: Params, image_size: int) -> dict[str, list[Any]]:
    import great_expectations as gx

    E = gx.expectations
    slice_checks = [
        E.ExpectColumnValuesToBeBetween(column="min", min_value=-1.0, max_value=1.0),
        E.ExpectColumnValuesToBeBetween(column="max", min_value=-1.0, max_value=1.0),
        E.ExpectColumnValuesToBeInSet(column="finite", value_set=[True]),
        E.ExpectColumnValuesToBeInSet(column="label_max", value_set=[0, 1]),
        E.ExpectColumnValuesToBeInSet(column="height", value_set=[image_size]),
        E.ExpectColumnValuesToBeInSet(column="width", value_set=[image_size]),
    ]
    patient_checks = [
        # A patient in two splits would leak test anatomy into training.
        E.ExpectColumnValuesToBeUnique(column="patient"),
    ]
    per_split: dict[str, list[Any]] = {}
    for split in SPLITS:
        checks: list[Any] = []
        minimum = params.validate.min_slices.get(split, 0)
        if minimum:
            checks.append(E.ExpectTableRowCountToBeBetween(min_value=minimum))
        if split != "mri_unlabelled":  # labels of unlabelled MRI are never used
            checks.append(E.ExpectColumnMeanToBeBetween(
                column="has_liver", min_value=params.validate.min_liver_fraction, max_value=1.0))
        per_split[split] = checks
    return {"slices": slice_checks, "patients": patient_checks, **{f"split:{k}": v for k, v in per_split.items()}}


def validate_prepared(params: Params, prepared_dir: Path, docs_dir: Path | None = None) -> dict:
    """Run every suite through a Checkpoint; build Data Docs in `docs_dir` (even when checks fail);
    return a JSON-able report, or raise DataValidationError listing failures."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    slices, patients = summarise_slices(prepared_dir)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    actions = _data_docs_actions(context, docs_dir) if docs_dir is not None else []
    source = context.data_sources.add_pandas("prepared")
    tables = {"slices": slices, "patients": patients}
    tables.update({f"split:{s}": slices[slices["split"] == s].astype({"has_liver": float}) for s in SPLITS})
    report: dict = {"checks": [], "success": True, "n_slices": int(len(slices))}
    failures: list[str] = []
    suites = {name: checks for name, checks in _suites(params, params.prepare.image_size).items() if checks}
    for name, checks in suites.items():
        slug = f"liversynth-{name.replace(':', '-')}"
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(gx.ExpectationSuite(name=slug))
        for check in checks:
            suite.add_expectation(check)
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=slug, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(name=slug, validation_definitions=[definition],
                                                           actions=actions))
        run = checkpoint.run(batch_parameters={"dataframe": tables[name]})
        for result in run.run_results.values():
            for res in result.results:
                cfg = res.expectation_config
                assert cfg is not None
                entry = {"table": name, "expectation": cfg.type, "kwargs": _plain(cfg.kwargs),
                         "success": bool(res.success), "observed": _plain(res.result)}
                report["checks"].append(entry)
                if not res.success:
                    failures.append(_describe(entry, tables[name]))
    report["success"] = not failures
    if failures:
        raise DataValidationError(
            f"prepared data in {prepared_dir} failed {len(failures)} check(s):\n  - " + "\n  - ".join(failures)
        )
    return report


def _data_docs_actions(context: Any, docs_dir: Path) -> list[Any]:
    """A local Data Docs site in `docs_dir` and the Checkpoint action that rebuilds it."""
    from great_expectations.checkpoint import UpdateDataDocsAction

    Path(docs_dir).mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(site_name="liversynth", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(Path(docs_dir).resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    return [UpdateDataDocsAction(name="data_docs", site_names=["liversynth"])]


def _describe(entry: dict, table: pd.DataFrame) -> str:
    kw = {k: v for k, v in entry["kwargs"].items() if k not in ("batch_id",)}
    observed = entry["observed"]
    detail = observed.get("observed_value", observed.get("partial_unexpected_list"))
    where = entry["table"]
    if "partial_unexpected_index_list" in observed and "patient" in table:
        idx = observed["partial_unexpected_index_list"] or []
        names = sorted({f"{table.loc[i, 'split']}/{table.loc[i, 'patient']}" for i in idx if i in table.index})[:5]
        if names:
            where += f" (patients {', '.join(names)})"
    elif "partial_unexpected_list" in observed and kw.get("column") == "patient":
        where += f" (patients {', '.join(map(str, observed['partial_unexpected_list'][:5]))})"
    return f"{where}: {entry['expectation']} {kw} failed; observed {detail}"


def _plain(value: Any) -> Any:
    """GX results hold numpy scalars and custom objects; reduce them to JSON-able values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:20]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
