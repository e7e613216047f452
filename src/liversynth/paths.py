"""Every pipeline artifact's path, in one place (nnU-Net's `paths.py`), relative to the repository root.

Flows import these (and the library) instead of each other; `tests/test_dag.py` checks them against the outs of
dvc.yaml, so a renamed output cannot drift from the DAG.
"""
from __future__ import annotations

from pathlib import Path

__all__ = [
    "CHECKPOINTS", "DATA_DVC", "ORACLE", "MAKE_RUN", "RUN_DURATIONS", "STUDY_RUN_DURATIONS", "DOWNLOADS", "FIGURES", "METRICS", "PER_PATIENT", "PREPARED", "RAW",
    "REAL_SAMPLE_SHA256", "REGISTRY_REPORT", "REPORT", "REPORTS", "TUNE_RESULT", "TUNE_TRIALS",
    "UNET_DIR", "UNET_HISTORY", "UNET_VAL_IOU", "PER_PATIENT_IOU", "DATA_DOCS", "UNET_MODELS", "VALIDATION", "VARIANTS", "essnet_checkpoint",
    "full_model_path", "generator_dir", "generator_path", "generator_step_path", "kept_generator_path", "variant_fidelity", "synthetic_root", "STUDY_DIR", "STUDY_MODELS",
    "STUDY_METRICS", "STUDY_RUN", "STUDY_BUDGET_DATA", "STUDY_BUDGET_CSV", "STUDY_BUDGET_FIGURE", "budget_synthetic_dir", "STUDY_GAIN_CSV", "STUDY_GAIN_FIGURE", "synthesis_grid", "synthesis_metrics_path", "synthetic_dir",
    "variant_grid", "variant_history", "variant_losses", "EVALUATE_FIGURES",
    "SEGMENT_DEMO", "SEGMENT_DEMO_FIGURE", "SEGMENT_DEMO_MASK",
]

VARIANTS = ("essnet", "cyclegan")  # the method and its ablation (EssNet without the segmenter loss)

RAW = Path("data/raw")
DATA_DVC = Path("data.dvc")
DOWNLOADS = Path("data/downloads")
REAL_SAMPLE_SHA256 = Path("data/real_sample.sha256")
PREPARED = Path("data/prepared")
# Phantom only: each CT patient's own anatomy rendered as MRI (data/oracle.py); elsewhere oracle.json says why not.
ORACLE = Path("data/oracle")
REPORTS = Path("reports")
FIGURES = REPORTS / "figures"
VALIDATION = REPORTS / "validation.json"
DATA_DOCS = REPORTS / "data_docs"  # Great Expectations Data Docs (HTML) of the validate stage
TUNE_RESULT = REPORTS / "tune.json"
TUNE_TRIALS = REPORTS / "tune_trials.csv"
UNET_DIR = Path("models/unet")
UNET_MODELS = UNET_DIR / "models.json"
UNET_HISTORY = REPORTS / "unet_history.csv"
UNET_VAL_IOU = REPORTS / "unet_val_iou.csv"  # wide: step, one column per arm (mean over seeds)
METRICS = Path("metrics.json")
REPORT = REPORTS / "report.html"
PER_PATIENT = REPORTS / "per_patient.csv"
PER_PATIENT_IOU = REPORTS / "per_patient_iou.csv"  # wide: patient, one IoU column per arm (mean over seeds)
REGISTRY_REPORT = REPORTS / "registry.json"
MAKE_RUN = REPORTS / "make_run.json"  # wall time of the `make run` that produced metrics.json (not a stage output)
RUN_DURATIONS = REPORTS / "run_durations.json"  # its MLflow runs' durations against their work (not a stage output)
# Stage segment_demo: one held-out test volume segmented by the champion, on its own grid.
SEGMENT_DEMO = REPORTS / "segment_demo.json"
SEGMENT_DEMO_MASK = REPORTS / "segment_demo_mask.nii.gz"
SEGMENT_DEMO_FIGURE = FIGURES / "segment_demo.png"
EVALUATE_FIGURES = {name: FIGURES / f"{name}.png" for name in ("iou_vs_ratio", "gain", "unet_val_iou", "arms", "fidelity")}
# The study (study/dvc.yaml): every arm at several numbers of labelled patients.
STUDY_DIR = REPORTS / "study"
STUDY_MODELS = Path("models/study_unet")
STUDY_METRICS = STUDY_DIR / "metrics.json"
STUDY_GAIN_CSV = STUDY_DIR / "gain_vs_labelled.csv"  # wide: labelled patients, one gain column per arm
STUDY_GAIN_FIGURE = STUDY_DIR / "gain_vs_labelled.png"
STUDY_BUDGET_DATA = Path("data/study_budget")  # synthetic MRI from the generators at the budget steps
STUDY_BUDGET_CSV = STUDY_DIR / "budget.csv"  # per budget step: CPU-minutes, fidelity, EssNet gain, share of ceiling
STUDY_BUDGET_FIGURE = STUDY_DIR / "budget.png"
STUDY_RUN = STUDY_DIR / "make_study.json"  # wall time of the `make study` that produced it (not a stage output)
STUDY_RUN_DURATIONS = STUDY_DIR / "run_durations.json"  # its MLflow runs' durations (not a stage output)
# Training state outside DVC's outputs (DVC deletes outputs before a stage reruns).
CHECKPOINTS = Path(".checkpoints")


def generator_dir(variant: str) -> Path:
    """The stage output holding every seed's generator of a variant."""
    return Path("models") / variant


def generator_path(variant: str, seed: int) -> Path:
    return generator_dir(variant) / f"seed{seed}" / "g_ct2mri.pt"


def full_model_path(variant: str, seed: int) -> Path:
    return generator_dir(variant) / f"seed{seed}" / "essnet.pt"


def generator_step_path(variant: str, seed: int, step: int) -> Path:
    """The generator as it was at checkpoint `step` (inside the variant's output): the budget axis."""
    return generator_dir(variant) / f"seed{seed}" / f"g_ct2mri_step{step}.pt"


def budget_synthetic_dir(variant: str, seed: int, step: int) -> Path:
    return STUDY_BUDGET_DATA / variant / f"seed{seed}" / f"step{step}"


def variant_fidelity(variant: str) -> Path:
    """Fidelity against the oracle at every checkpoint of every seed (phantom only; empty elsewhere)."""
    return REPORTS / f"{variant}_fidelity.csv"


def variant_grid(variant: str) -> Path:
    return FIGURES / f"{variant}_grid.png"


def variant_losses(variant: str) -> Path:
    return FIGURES / f"{variant}_losses.png"


def variant_history(variant: str) -> Path:
    return REPORTS / f"{variant}_history.csv"


def essnet_checkpoint(variant: str, seed: int) -> Path:
    return CHECKPOINTS / f"{variant}-seed{seed}.pt"


def kept_generator_path(variant: str, seed: int, step: int) -> Path:
    """The generator at a budget step, beside its training checkpoint until the stage has succeeded."""
    return CHECKPOINTS / f"{variant}-seed{seed}-g_ct2mri_step{step}.pt"


def synthetic_root(variant: str) -> Path:
    """The stage output holding every generator seed's synthetic MRI of a variant."""
    return Path("data/synthetic") / variant


def synthetic_dir(variant: str, seed: int) -> Path:
    return synthetic_root(variant) / f"seed{seed}"


def synthesis_metrics_path(variant: str) -> Path:
    return REPORTS / f"synthesis_metrics_{variant}.json"


def synthesis_grid(variant: str) -> Path:
    return FIGURES / f"synthesis_grid_{variant}.png"
