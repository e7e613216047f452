"""README's results, generated from artifacts (metrics.json, reports/tune.json, benchmark summaries),
never typed by hand: `make results` rewrites the marked blocks, and a test fails when they differ."""
from __future__ import annotations

import re
from typing import Any

from liversynth.evaluation.ceiling import ceiling_lines
from liversynth.evaluation.report import ARM_NAMES, headline, machine_line, verdict

__all__ = ["block_names", "render_ceiling", "render_reproducibility", "render_results", "render_study",
           "replace_block"]

_BLOCK = re.compile(r"(<!-- BEGIN GENERATED: (?P<name>[\w-]+)[^>]*-->\n)(?P<body>.*?)(<!-- END GENERATED: (?P=name) -->)",
                    re.S)


def block_names(text: str) -> list[str]:
    return [m.group("name") for m in _BLOCK.finditer(text)]


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the body of block `name` replaced; a missing block is an error naming it."""
    found = False

    def swap(m: re.Match[str]) -> str:
        nonlocal found
        if m.group("name") != name:
            return m.group(0)
        found = True
        return m.group(1) + body.rstrip("\n") + "\n" + m.group(4)

    out = _BLOCK.sub(swap, text)
    if not found:
        raise ValueError(f"README.md: no block <!-- BEGIN GENERATED: {name} --> ... <!-- END GENERATED: {name} -->")
    return out


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _durations_line(make_run: dict[str, Any] | None) -> str:
    """How long its MLflow runs lasted against the work (reports/run_durations.json, `make run`)."""
    durations = (make_run or {}).get("durations")
    if not durations:
        return ""
    trainings, pipeline = durations["trainings"], durations.get("pipeline") or {}
    worst = trainings.get("worst_ratio")
    line = (f" Its MLflow runs lasted what their work lasted: {trainings['within']} of {trainings['n']} training runs "
            f"within 10% of the wall time their worker measured" + (f" (worst {100 * worst:.1f}%)" if worst is not None else ""))
    if pipeline.get("repro_wall_s"):
        line += (f"; the pipeline run {pipeline['duration_s'] / 60:.1f} min of the `dvc repro`'s "
                 f"{pipeline['repro_wall_s'] / 60:.1f} min")
    return line + " (`reports/run_durations.json`)."


def render_results(metrics: dict[str, Any], tune: dict[str, Any], make_run: dict[str, Any] | None = None) -> str:
    arms = metrics["test"]
    timing = (f" The `make run` that produced these results took {make_run['wall_s'] / 60:.1f} min after set-up "
              f"on {make_run['machine']['cpu']}." if make_run else "") + _durations_line(make_run)
    lines = [headline(metrics), "", machine_line(metrics) + timing, "",
             "| arm (test split, mean over U-Net seeds) | IoU per patient | Dice per patient | IoU pixels pooled | "
             "IoU per slice | U-Nets (generator seeds) |", "|---|---|---|---|---|---|"]
    for arm, v in arms.items():
        gens = f" ({v['n_generator_seeds']})" if v.get("n_generator_seeds") else ""
        lines.append(f"| {ARM_NAMES.get(arm, arm)} | {v['iou']:.4f} | {v['dice']:.4f} | {v['iou_pooled']:.4f} | "
                     f"{v['iou_slice']:.4f} | {v['n_seeds']}{gens} |")
    lines += ["", "| comparison | role | gain (points) | 95% CI | p (two-sided t) | verdict |", "|---|---|---|---|---|---|"]
    gains = [(k, g) for k, g in metrics.items() if k.startswith("gain_") and isinstance(g, dict) and "label" in g]
    for key, g in sorted(gains, key=lambda kg: kg[1]["role"] != "primary"):
        lines.append(f"| {g['label']} | {g['role']} | {_pts(g['mean'])} | [{_pts(g['ci_low'])}, {_pts(g['ci_high'])}] "
                     f"| {g['p_value']:.3f} | {verdict(g)} |")
    d = metrics.get("drift_dice_essnet_minus_cyclegan")
    if d:
        lines += ["", f"Anatomy drift (Dice of a real-MRI U-Net on synthetic MRI against the CT liver, per CT "
                      f"patient): EssNet {metrics['synthesis']['drift_dice']:.4f}, CycleGAN "
                      f"{metrics['synthesis_cyclegan']['drift_dice']:.4f}; EssNet - CycleGAN {_pts(d['mean'])} "
                      f"points [{_pts(d['ci_low'])}, {_pts(d['ci_high'])}]."]
    lines += ["", _tuning_line(metrics, tune) + f" Intervals: {gains[0][1]['method']}. "
                  f"Test split sha256 `{metrics['test_split_sha256'][:16]}...`."]
    return "\n".join(lines) + "\n"


def render_ceiling(metrics: dict[str, Any]) -> str:
    """The ceiling, the translators' shares of it and their convergence (metrics.json; phantom only)."""
    return "\n\n".join(ceiling_lines(metrics)) + "\n"


def _tuning_line(metrics: dict[str, Any], tune: dict[str, Any]) -> str:
    """What tuning chose on the real-MRI validation split, for the mix and for the baseline."""
    mix, base = tune.get("mix"), tune.get("baseline")
    if not (mix and base):
        trials = ", ".join(f"ratio {t['ratio']:g}: {t['val_iou']:.4f}" for t in tune.get("trials", []))
        return f"Mixing ratio chosen on the real-MRI validation split (Optuna): {metrics['best_ratio']:g} ({trials})."
    n_mix = sum(1 for t in tune["trials"] if float(t["ratio"]) > 0)
    n_base = len(tune["trials"]) - n_mix
    return (f"Chosen on the real-MRI validation split (Optuna grid): the mix at ratio {mix['ratio']:g}, lr "
            f"{mix['lr']:g}, {mix['steps']} steps (best of {n_mix} trials, validation IoU {tune['best_val_iou']:.4f}); "
            f"the real-only baseline at lr {base['lr']:g}, {base['steps']} steps (best of {n_base} trials, "
            f"{tune['baseline_val_iou']:.4f}). Generator seeds per variant: {len(metrics.get('generator_seeds', [0]))}; "
            f"U-Net seeds per arm: {len(metrics['seeds'])}; labelled real MRI patients: "
            f"{metrics.get('labelled_patients', '?')}.")


_STUDY_GAINS = (("gain_iou", "EssNet mix - real only"), ("gain_iou_cyclegan", "CycleGAN mix - real only"),
                ("gain_iou_ct", "raw CT mix - real only"), ("gain_iou_essnet_vs_cyclegan", "EssNet mix - CycleGAN mix"),
                ("gain_iou_atlas", "CT-label atlas - real only"),
                ("gain_iou_oracle", "oracle mix - real only (the ceiling)"))


def render_study(study: dict[str, Any], wall: dict[str, Any] | None = None) -> str:
    """The study's table: real-only IoU and each gain with its interval, per number of labelled patients."""
    timing = (f" The study stage (`make study` with the default pipeline up to date) took {wall['wall_s'] / 60:.1f} "
              f"min on {wall['machine']['cpu']} "
              f"({wall['machine']['threads']} thread(s) per training process)." if wall else "")
    lines = [f"{study['n_models']} U-Nets: every arm x {len(study['seeds'])} U-Net seeds (synthetic arms on "
             f"{len(study['generator_seeds'])} generator seeds) at each number of labelled real MRI patients; "
             f"settings tuned at {study['tuned_at_labelled_patients']}.{timing}", "",
             "| labelled patients | real only IoU | " + " | ".join(label for _, label in _STUDY_GAINS) + " |",
             "|---|---|" + "---|" * len(_STUDY_GAINS)]
    for n, c in study["by_labelled_patients"].items():
        cells = [f"{_pts(c[k]['mean'])} [{_pts(c[k]['ci_low'])}, {_pts(c[k]['ci_high'])}]" if k in c else "-"
                 for k, _ in _STUDY_GAINS]
        lines.append(f"| {n} | {c['test']['real_only']['iou']:.4f} | " + " | ".join(cells) + " |")
    lines += ["", "Gains in IoU points, [interval]: the same hierarchical interval as the default run's."]
    return "\n".join(lines + _budget_lines(study.get("budget", []))) + "\n"


def _budget_lines(budget: list[dict[str, Any]]) -> list[str]:
    """The translator-budget axis: per generator checkpoint, its cost, fidelity, gain and share."""
    if not budget:
        return []
    lines = ["", "Translator budget (EssNet, at the tuned number of labelled patients): the mix retrained on each "
                 "generator seed's translation at a checkpoint of its training.", "",
             "| generator step | share of its steps | CPU-minutes per generator | SSIM against the oracle | "
             "EssNet mix - real only | share of the ceiling |", "|---|---|---|---|---|---|"]
    for b in budget:
        g, share = b["gain_iou"], b.get("share")
        cell = (f"{100 * share['mean']:.0f}% [{100 * share['ci_low']:.0f}%, {100 * share['ci_high']:.0f}%]"
                if share else "-")
        if b.get("ceiling") and not b["ceiling"]["shows_translation_value"]:
            cell = "none: the ceiling's interval includes 0"
        lines.append(f"| {b['step']} | {b['fraction']:.2f} | {b['cpu_min']:.1f} | {b['fidelity_ssim']:.3f} | "
                     f"{_pts(g['mean'])} [{_pts(g['ci_low'])}, {_pts(g['ci_high'])}] | {cell} |")
    return lines


def render_reproducibility(record: dict[str, Any]) -> str:
    """Runs of one commit side by side (scripts/compare_runs.py): identity, and each verdict."""
    runs = record["runs"]
    head = ["| run | threads per process | CPU | metrics.json identical to the first | same verdicts |",
            "|---|---|---|---|---|"]
    head += [f"| {r['label']} | {r['threads']} | {r['cpu']} ({r['isa']}) | {'yes' if r['identical_to_first'] else 'no'} "
             f"| {'yes' if r['same_verdicts_as_first'] else 'no'} |" for r in runs]
    keys = list(runs[0]["gains"])
    table = ["", "| comparison | " + " | ".join(r["label"] for r in runs) + " |", "|---|" + "---|" * len(runs)]
    for k in keys:
        cells = [f"{_pts(r['gains'][k]['mean'])} [{_pts(r['gains'][k]['ci_low'])}, {_pts(r['gains'][k]['ci_high'])}] "
                 f"{r['gains'][k]['verdict']}" if k in r["gains"] else "-" for r in runs]
        table.append(f"| {runs[0]['gains'][k]['label']} | " + " | ".join(cells) + " |")
    commit = f"Committed results from the stage code of `{record['commit'][:10]}`. " if record.get("commit") else ""
    return commit + "Gains in IoU points [interval] and verdict.\n\n" + "\n".join(head + table) + "\n"
