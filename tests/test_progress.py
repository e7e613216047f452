"""Progress lines name their training and give step/total, rate and time left (not on a terminal)."""
from __future__ import annotations

import re
import time

from liversynth.training.loop import LoopPlan, progress_line, run_loop


def test_progress_lines_name_the_training_with_rate_and_time_left(capsys):
    steps: list[int] = []
    plan = LoopPlan(total=20, log_every=5, desc="essnet seed=1")
    run_loop(plan, 0, lambda i: (steps.append(i), time.sleep(0.01)), lambda i: None)
    lines = capsys.readouterr().err.strip().splitlines()  # pytest's stderr is no terminal: log lines
    assert steps == list(range(1, 21)) and len(lines) == 10
    pattern = r"essnet seed=1: step (\d+)/20 \(\d+%\), (\d+\.\d+) steps/s, (\d+)m(\d\d)s left"
    matches = [re.fullmatch(pattern, line) for line in lines]
    assert all(matches), lines
    assert float(matches[0].group(2)) > 0 and matches[-1].group(1) == "20" and matches[-1].group(3, 4) == ("0", "00")


def test_progress_line_of_a_resumed_training_counts_its_own_steps():
    # resumed at step 50 of 100: 10 steps in 5 s is 2 steps/s, so 40 steps left take 20 s
    assert progress_line("unet mix seed=0", 60, 100, 10, 5.0) == "unet mix seed=0: step 60/100 (60%), 2.00 steps/s, 0m20s left"
    assert progress_line("trial 3 [ratio=1]", 1, 10, 0, 0.0).endswith("0.00 steps/s, time left unknown")
