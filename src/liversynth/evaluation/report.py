"""One self-contained HTML page (and the same content as Markdown) answering "does synthetic MRI help?".

Figures are embedded as base64 PNGs so the page can be mailed, attached to an MLflow run, or opened
from a CI artifact without its folder.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from liversynth.evaluation.ceiling import ceiling_lines
from liversynth.training.arms import arm_labels

__all__ = [
    "ARM_NAMES", "COMPARISON_HEADER", "PAPER_NOTE", "SCORE_COLUMNS", "SCORE_HEADER", "headline",
    "machine_line", "render_html", "render_markdown", "verdict"
]

ARM_NAMES = arm_labels()
# The paper's figure is on CHAOS (real CT and MRI); the phantom's numbers are not comparable to it.
PAPER_NOTE = ("For orientation only: Rafiq et al. 2025 report +1.17 IoU points on CHAOS (real scans); "
              "numbers on the built-in phantom are not comparable to that.")
SCORE_COLUMNS = [("iou", "IoU (per patient)"), ("dice", "Dice (per patient)"), ("iou_pooled", "IoU (pixels pooled)"),
                 ("iou_slice", "IoU (per slice)"), ("dice_slice", "Dice (per slice)")]


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def verdict(gain: dict[str, Any], margin: float = 0.0) -> str:
    if gain["ci_low"] > margin:
        return "helps"
    if gain["ci_high"] < -margin if margin else gain["ci_high"] < 0:
        return "hurts"
    return "shows no significant effect"


def headline(metrics: dict[str, Any]) -> str:
    primary = metrics["primary"]
    g = metrics[primary["key"]]
    status = "pre-registered" if primary["registered"] else "exploratory (no test split registered)"
    return (f"Primary comparison ({status}): {g['label']}, per-patient test {g['metric'].upper()}, margin "
            f"{_pts(primary['margin'])} points. Adding EssNet-synthetic MRI (ratio {metrics['best_ratio']:g}) "
            f"{verdict(g, primary['margin'])}: gain {_pts(g['mean'])} points, {int(round(100 * g['ci']))}% CI "
            f"[{_pts(g['ci_low'])}, {_pts(g['ci_high'])}] over {g['n']} test patients and {g['generator_seeds']} "
            f"generator seed(s) x {g['unet_seeds']} U-Net seed(s) each ({g['method']}).")


def machine_line(metrics: dict[str, Any]) -> str:
    m = metrics.get("machine", {})
    return (f"Made on: {m.get('cpu', '?')} (ISA {m.get('isa', '?')}), {m.get('threads', '?')} threads, "
            f"GPU {m.get('gpu', '?')}, torch {m.get('torch', '?')}, MONAI {m.get('monai', '?')}. Bitwise "
            f"identical only on the same CPU type and thread count.")


def _score_rows(metrics: dict[str, Any]) -> list[list[str]]:
    rows = []
    for arm, values in metrics["test"].items():
        rows.append([ARM_NAMES.get(arm, arm)] + [f"{values[k]:.4f}" for k, _ in SCORE_COLUMNS]
                    + [f"{values.get('iou_seed_std', float('nan')):.4f}"])
    return rows


def _comparison_rows(metrics: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key, g in metrics.items():
        if key.startswith("gain_") and isinstance(g, dict) and "label" in g:
            rows.append([g["label"], g["role"], _pts(g["mean"]), f"[{_pts(g['ci_low'])}, {_pts(g['ci_high'])}]",
                         f"{g['p_value']:.3f}"])
    return sorted(rows, key=lambda r: r[1] != "primary")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _img(path: Path, caption: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


SCORE_HEADER = ["arm"] + [label for _, label in SCORE_COLUMNS] + ["IoU std over seeds"]
COMPARISON_HEADER = ["comparison", "role", "gain (points)", "95% CI", "p (two-sided t)"]


def _synthesis_rows(synthesis: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """One row per quality metric, one column per translation model (EssNet, CycleGAN ablation)."""
    names = list(synthesis)
    keys = sorted({k for values in synthesis.values() for k in values})
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    return ["metric"] + names, [[k] + [fmt(synthesis[n].get(k, "")) for n in names] for k in keys]


def render_html(metrics: dict[str, Any], synthesis: dict[str, dict[str, float]], figures: dict[str, Path],
                per_patient: list[list[str]]) -> str:
    synth_header, synth_rows = _synthesis_rows(synthesis)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>liversynth report</title><style>",
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child{text-align:left}figure{display:inline-block;margin:8px}"
        "img{max-width:460px}.headline{font-size:1.2em;padding:1em;background:#eef6ee;border-radius:6px}",
        "</style></head><body><h1>Does synthetic MRI help liver segmentation?</h1>",
        f"<p class='headline'>{html.escape(headline(metrics))}</p>",
        f"<p>{html.escape(machine_line(metrics))} {html.escape(PAPER_NOTE)}</p>",
        "<h2>Test scores (mean over seeds)</h2>", _table(SCORE_HEADER, _score_rows(metrics)),
        "<h2>Gains, paired over test patients</h2>", _table(COMPARISON_HEADER, _comparison_rows(metrics)),
        "<h2>The ceiling: a perfect translator, and how close the translators come</h2>",
        "".join(f"<p>{html.escape(line)}</p>" for line in ceiling_lines(metrics)),
        "".join(_img(p, c) for c, p in figures.items()),
        "<h2>Synthesis quality (no downloaded weights)</h2>",
        "<p>seg_consistency_dice: a U-Net trained on real MRI only, applied to synthetic MRI, Dice against the "
        "carried-over CT label. wasserstein_*: distance between intensity histograms (body pixels). "
        "*_cycle_*: CT&rarr;MRI&rarr;CT and MRI&rarr;CT&rarr;MRI reconstruction.</p>",
        _table(synth_header, synth_rows),
        "<h2>Per test patient IoU</h2>", _table(["patient", "arm", "seed", "IoU", "Dice"], per_patient),
        "</body></html>",
    ]
    return "\n".join(parts)


def render_markdown(metrics: dict[str, Any], synthesis: dict[str, dict[str, float]]) -> str:
    synth_header, synth_rows = _synthesis_rows(synthesis)
    return "\n\n".join([
        "# Does synthetic MRI help liver segmentation?", headline(metrics), machine_line(metrics), PAPER_NOTE,
        "## Test scores (mean over seeds)", _md_table(SCORE_HEADER, _score_rows(metrics)),
        "## Gains, paired over test patients", _md_table(COMPARISON_HEADER, _comparison_rows(metrics)),
        "## The ceiling", *ceiling_lines(metrics),
        "## Synthesis quality", _md_table(synth_header, synth_rows),
    ])
