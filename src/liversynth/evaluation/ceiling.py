"""The ceiling and the translator's convergence, as the report and README say them.

A translator's gain alone cannot tell a benchmark where translation cannot help from a translator that
has not learned. The phantom's oracle separates them: the ceiling (`mix_oracle` - `real_only`) says what
a perfect translator adds here, each translator's share of it says how much of that it reaches, and its
fidelity against the oracle over training steps says whether more training would have moved it.

Convergence is judged on SSIM against the oracle: the slope of a least-squares line through the
checkpoints of the last quarter of training, in SSIM per 1000 steps, below `evaluate.converged_ssim_slope`
(fixed before results are read) means converged. A flat curve alone does not say the translator learnt:
`fidelity_references` (the oracle stage) put the scale in place, from a constant image (no structure)
to an independent re-render of the same anatomy (a perfect translator), and the report gives where the
translator sits between them.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ceiling_lines", "convergence", "fidelity_curves", "read_fidelity"]

_NAMES = {"essnet": "EssNet", "cyclegan": "CycleGAN"}


def read_fidelity(path: Path) -> list[dict[str, float]]:
    """Rows of reports/<variant>_fidelity.csv as numbers; [] when the file is absent or empty (no oracle)."""
    if not Path(path).exists():
        return []
    with Path(path).open() as fh:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
                for row in csv.DictReader(fh)]


def convergence(rows: list[dict[str, float]], total_steps: int, threshold: float,
                key: str = "ssim") -> dict[str, Any]:
    """Per generator seed: fidelity at the last checkpoint, the slope of `key` over the last quarter of
    training (per 1000 steps) and whether it is below `threshold`; then the means over seeds."""
    per_seed: dict[str, dict[str, Any]] = {}
    for seed in sorted({int(r["seed"]) for r in rows}):
        mine = sorted((r for r in rows if int(r["seed"]) == seed), key=lambda r: r["step"])
        tail = [r for r in mine if r["step"] >= 0.75 * total_steps]
        if len(tail) < 2:  # fewer than two points in the last quarter: take the last two checkpoints
            tail = mine[-2:]
        slope = (float(np.polyfit([r["step"] for r in tail], [r[key] for r in tail], 1)[0]) * 1000
                 if len(tail) >= 2 else float("nan"))
        last = mine[-1]
        # cpu_s (the CPU-seconds spent by then) is a measured time, not fidelity: metrics.json stays a pure
        # function of code, data and params (same commit, same CPU type -> same file).
        per_seed[str(seed)] = {"final": {k: v for k, v in last.items() if k not in ("seed", "step", "cpu_s")},
                               "final_step": int(last["step"]), "checkpoints": len(mine),
                               f"slope_{key}_per_1000_steps": slope,
                               "tail_steps": [int(r["step"]) for r in tail],
                               "converged": bool(np.isfinite(slope) and slope < threshold)}
    keys = sorted({k for s in per_seed.values() for k in s["final"]})
    return {"per_seed": per_seed, "key": key, "threshold_per_1000_steps": threshold,
            "final_mean": {k: float(np.nanmean([s["final"][k] for s in per_seed.values()])) for k in keys},
            f"slope_{key}_per_1000_steps_mean": float(np.mean([s[f"slope_{key}_per_1000_steps"]
                                                                for s in per_seed.values()])),
            "converged_seeds": sum(s["converged"] for s in per_seed.values()), "n_seeds": len(per_seed)}


def fidelity_curves(rows_by_variant: dict[str, list[dict[str, float]]], key: str = "ssim"
                    ) -> dict[str, tuple[Sequence[float], Sequence[float]]]:
    """{"EssNet seed 0": (steps, values)} for a curves plot of fidelity against generator step."""
    out: dict[str, tuple[Sequence[float], Sequence[float]]] = {}
    for variant, rows in rows_by_variant.items():
        for seed in sorted({int(r["seed"]) for r in rows}):
            mine = sorted((r for r in rows if int(r["seed"]) == seed), key=lambda r: r["step"])
            out[f"{_NAMES.get(variant, variant)} seed {seed}"] = ([r["step"] for r in mine],
                                                                 [r[key] for r in mine])
    return out


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def ceiling_lines(metrics: dict[str, Any]) -> list[str]:
    """The ceiling, each translator's share of it and the translators' convergence, as sentences."""
    oracle = metrics.get("oracle")
    if oracle is None:
        return ["No ceiling: these results were made before the oracle arms existed."]
    if not oracle["available"]:
        return [f"No ceiling and no fidelity against ground truth: {oracle['reason']}."]
    lines = []
    c = metrics.get("ceiling")
    if c is not None:
        ci = f"{int(round(100 * c['ci']))}% CI"
        lines.append(f"Ceiling (real + oracle translation - real only, the most any translator can add here): "
                     f"{_pts(c['mean'])} IoU points, {ci} [{_pts(c['ci_low'])}, {_pts(c['ci_high'])}].")
        if c["shows_translation_value"]:
            shares = [f"{_NAMES.get(t, t)} reaches {_pct(s['mean'])} of it ({ci} [{_pct(s['ci_low'])}, "
                      f"{_pct(s['ci_high'])}])" for t, s in metrics.get("share_of_ceiling", {}).items()]
            lines.append(f"A perfect translator adds {_pts(c['mean'])} points here; " + "; ".join(shares) + ".")
        else:
            lines.append("The ceiling's interval includes 0: this benchmark cannot show a translator's value "
                         "(that is not evidence of no effect).")
    for variant, f in metrics.get("fidelity", {}).items():
        final = f["final_mean"]
        slope = f[f"slope_{f['key']}_per_1000_steps_mean"]
        state = ("had converged" if f["converged_seeds"] == f["n_seeds"] else
                 "had not converged" if f["converged_seeds"] == 0 else "had converged in some seeds only")
        lines.append(_where(variant, final.get("ssim", float("nan")), metrics.get("fidelity_references")))
        lines.append(f"{_NAMES.get(variant, variant)} fidelity against the oracle at its last checkpoint (mean over "
                     f"{f['n_seeds']} generator seeds): SSIM {final.get('ssim', float('nan')):.3f}, PSNR "
                     f"{final.get('psnr', float('nan')):.1f} dB, MAE {final.get('mae', float('nan')):.3f}, tissue "
                     f"contrast rank {final.get('contrast_rank', float('nan')):.2f}; SSIM slope over the last quarter "
                     f"{slope:+.3f} per 1000 steps: it {state} ({f['converged_seeds']}/{f['n_seeds']} seeds below "
                     f"{f['threshold_per_1000_steps']:g}).")
    return lines


def _where(variant: str, ssim: float, references: dict[str, dict[str, float]] | None) -> str:
    """Where a translator's SSIM sits between a constant image (0%) and a perfect re-render (100%)."""
    if not references:
        return f"{_NAMES.get(variant, variant)}: no fidelity references (the oracle stage wrote none)."
    floor, top = references["constant"]["ssim"], references["perfect_rerender"]["ssim"]
    share = (ssim - floor) / (top - floor) if top > floor else float("nan")
    return (f"{_NAMES.get(variant, variant)} SSIM {ssim:.3f} sits {_pct(share)} of the way from a constant image "
            f"(SSIM {floor:.3f}) to a perfect translation with its own texture and noise (SSIM {top:.3f}); "
            f"the CT itself, untranslated, scores {references['ct_unchanged']['ssim']:.3f}.")
