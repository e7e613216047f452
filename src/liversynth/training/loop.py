"""The one resumable training loop both trainings share: restore, step, log, checkpoint, as named pieces.

Progress shows as a bar on a terminal and as a log line every tenth of the run elsewhere (CI, DVC,
worker processes): both name the training (`LoopPlan.desc`: variant and seed, arm and seed, trial) and
give the step out of the total, the rate and the time left. The log lines go through the logger
`liversynth.progress` (to stderr as plain lines), so a runner can also send them elsewhere: the stage
flows add Prefect's log handler, and the lines show in the Prefect UI's logs of the run that trained.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from liversynth.training.checkpoint import load_checkpoint, save_checkpoint
from liversynth.utils.stage_errors import StageError

__all__ = ["DivergedError", "LoopPlan", "PROGRESS_LOGGER", "check_finite", "progress_logger", "progress_line", "restore",
           "run_loop", "save_state"]

PROGRESS_LOGGER = "liversynth.progress"


class _Stderr(logging.Handler):
    """Plain lines to whatever sys.stderr is at the time (a test's capture, a worker's pipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)


def progress_logger() -> logging.Logger:
    """The logger of the progress lines: INFO, plain lines on stderr, not propagated to the root's."""
    logger = logging.getLogger(PROGRESS_LOGGER)
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class DivergedError(StageError, FloatingPointError):
    """A loss went inf/nan: every later step would only train NaN weights, so the training stops."""


def check_finite(losses: Mapping[str, float], step: int, since: int, desc: str, keys: str) -> None:
    """Raise DivergedError naming the step window, the loss term and the params keys to look at.

    Checked on the logged window means (a NaN in any step of the window makes its mean NaN), so the
    device is not synchronised every step and a diverged run stops at its next log, not at the end.
    """
    bad = [name for name, value in losses.items() if not math.isfinite(value)]
    if bad:
        terms = ", ".join(f"{name!r} = {losses[name]}" for name in bad)
        raise DivergedError(f"{desc}: non-finite loss {terms} in steps {since + 1}-{step}: training diverged; "
                            f"lower {keys}")


def restore(checkpoint: Path | None, fingerprint: str, device: torch.device, max_step: int) -> dict[str, Any] | None:
    """This training's checkpoint, if there is one at or before `max_step` (a longer run is not reused:
    the result must be the model after exactly `max_step` steps)."""
    if checkpoint is None:
        return None
    state = load_checkpoint(Path(checkpoint), fingerprint, device)
    return state if state is not None and int(state["step"]) <= max_step else None


@dataclass(frozen=True)
class LoopPlan:
    total: int  # steps the finished training has done
    log_every: int  # call `log` every this many steps and at the last one
    checkpoint_every: int | None = None  # call `save` every this many steps and at the last; None: after each log
    desc: str = "train"  # which training: shown on every progress line
    progress: bool = True


def progress_line(desc: str, step: int, total: int, done: int, seconds: float) -> str:
    """`essnet seed=1: step 60/600 (10%), 2.31 steps/s, 3m54s left`: `done` steps took `seconds`."""
    rate = done / seconds if seconds > 0 else 0.0
    left = (total - step) / rate if rate > 0 else float("nan")
    when = f"{int(left // 60)}m{int(left % 60):02d}s left" if left == left else "time left unknown"
    return f"{desc}: step {step}/{total} ({step / total:.0%}), {rate:.2f} steps/s, {when}"


def run_loop(plan: LoopPlan, start: int, step: Callable[[int], None],
             log_fn: Callable[[int], dict[str, float] | None],
             save: Callable[[int], None] | None = None) -> int:
    """Steps start+1 .. plan.total; returns the last step saved (start if none was)."""
    saved_at = start
    steps = range(start + 1, plan.total + 1)
    tty = sys.stderr.isatty()
    bar = tqdm(steps, initial=start, total=plan.total, desc=plan.desc, disable=not (plan.progress and tty),
               leave=False)
    tenth = max(1, plan.total // 10)
    began = time.monotonic()
    for i in bar:
        step(i)
        last = i == plan.total
        if i % plan.log_every == 0 or last:
            shown = log_fn(i)
            if shown:
                bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items()})
            if save is not None and plan.checkpoint_every is None:
                save(i)
                saved_at = i
        if save is not None and plan.checkpoint_every and (i % plan.checkpoint_every == 0 or last):
            save(i)
            saved_at = i
        if plan.progress and not tty and (i % tenth == 0 or last):
            progress_logger().info(progress_line(plan.desc, i, plan.total, i - start, time.monotonic() - began))
    return saved_at


def save_state(path: Path, fingerprint: str, step: int, **state: Any) -> None:
    """A checkpoint of one training at `step`."""
    save_checkpoint(path, {"fingerprint": fingerprint, "step": step, **state})
