from pathlib import Path

from liversynth.evaluation import plots, report

GAIN = {"mean": 0.021, "ci_low": 0.004, "ci_high": 0.038, "p_value": 0.01, "n": 8, "ci": 0.95, "unet_seeds": 3,
        "generator_seeds": 1, "method": "hierarchical bootstrap SE, t(n-1) interval", "metric": "iou",
        "label": "EssNet mix - real only", "role": "primary", "arm": "mix", "baseline": "real_only"}
ARM = {"iou": 0.7, "dice": 0.8, "iou_pooled": 0.71, "dice_pooled": 0.81, "iou_slice": 0.6, "dice_slice": 0.7,
       "iou_seed_std": 0.01, "n_seeds": 3}
METRICS = {"test": {"real_only": ARM, "mix": {**ARM, "iou": 0.721}, "mix_cyclegan": ARM},
           "gain_iou": GAIN,
           "gain_iou_cyclegan": {**GAIN, "mean": -0.01, "ci_low": -0.03, "ci_high": 0.01, "role": "secondary",
                                 "label": "CycleGAN mix - real only"},
           "primary": {"key": "gain_iou", "margin": 0.0, "registered": True, "passes": True},
           "best_ratio": 3.0, "seeds": [0, 1, 2], "ci": 0.95,
           "machine": {"cpu": "AMD EPYC", "isa": "avx512f", "threads": "2", "gpu": "none", "torch": "2.13.0"}}


def test_headline_states_gain_ci_verdict_and_registration():
    text = report.headline(METRICS)
    assert "+2.10 points" in text and "[+0.40, +3.80]" in text and "helps" in text
    assert "pre-registered" in text and "1 generator seed(s) x 3 U-Net seed(s) each" in text
    flat = {**METRICS, "gain_iou": {**GAIN, "ci_low": -0.01}, "primary": {**METRICS["primary"], "registered": False}}
    assert "no significant effect" in report.headline(flat) and "exploratory" in report.headline(flat)


def test_html_is_self_contained_and_names_the_machine(tmp_path: Path):
    fig = plots.gain_plot([0.6, 0.7], [0.65, 0.72], GAIN, tmp_path / "g.png")
    page = report.render_html(METRICS, {"EssNet": {"seg_consistency_dice": 0.8}, "CycleGAN": {"seg_consistency_dice": 0.7}},
                              {"gain": fig, "missing": tmp_path / "nope.png"}, [["p1", "mix", "0", "0.7", "0.8"]])
    assert page.count("data:image/png;base64") == 1  # missing figures are skipped, present ones embedded
    assert "CycleGAN mix - real only" in page and "seg_consistency_dice" in page and "p1" in page
    assert "AMD EPYC" in page and "not comparable" in page
    md = report.render_markdown(METRICS, {"EssNet": {"seg_consistency_dice": 0.8}})
    assert "| EssNet mix - real only | primary | +2.10 |" in md
