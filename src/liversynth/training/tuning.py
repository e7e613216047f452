"""Optuna study over the synthetic-to-real mixing ratio (and the U-Net's learning rate and steps), on a
storage shared by any number of workers.

A grid point is a dict: "ratio" always (0 = the real-only baseline), "lr" and "steps" when tuned.
The grid (`points`: the mix's ratios x learning rates, and the baseline's learning rates x steps, the
same number of trials for each) is put in the study's trial queue once; each worker process pops queued trials until none is left. Popping a queued trial is atomic
in Optuna's storages (journal file or RDB), so two workers never run the same queued trial.

Optuna's GridSampler is not used: with several processes it may hand the same grid point to two
workers, and once the grid is exhausted it re-runs a random point. A queue plus the rule "of live
trials with the same ratio, only the lowest-numbered one runs" gives exactly-once completion even
when two workers enqueue the grid at the same moment.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

import optuna
import sqlalchemy
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

from liversynth.utils.process import owner_alive, owner_id

__all__ = ["Point", "best_point", "best_ratio", "fail_dead_trials", "grid", "open_storage", "open_study", "point_label",
           "points", "remaining_trials",
           "run_trials", "trial_checkpoint", "trial_table"]

_LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
_WORKER_ATTR = "worker"  # owner (liversynth.utils.process.owner_id) of the process running a trial


def open_storage(storage: str) -> optuna.storages.BaseStorage:
    """A path is a journal file (safe across processes via a lock file); a URL is an RDB.

    RDB storages (PostgreSQL for many machines) get heartbeats, so a trial whose machine died is
    marked failed after the grace period and its ratio is queued again.
    """
    if "://" in storage:
        for attempt in range(3):
            try:
                with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(storage, heartbeat_interval=60, grace_period=300)
            except sqlalchemy.exc.SQLAlchemyError:
                # Workers meeting an empty database at once race to create its tables; the loser
                # finds them made on a retry.
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


Point = dict[str, float]


def grid(ratios: tuple[float, ...]) -> list[float]:
    """The ratios to try, sorted and de-duplicated; 0 (real only) is always one of them."""
    return sorted({0.0, *(float(r) for r in ratios)})


def points(ratios: tuple[float, ...], lrs: tuple[float, ...] = (), baseline_steps: tuple[int, ...] = (),
           steps: int | None = None) -> list[Point]:
    """The grid: each non-zero ratio x each lr (at `steps`), and the baseline (ratio 0) at each lr x each
    of its own step counts. Without lrs, ratios alone (the lr and steps of params.yaml's unet:)."""
    if not lrs:
        return [{"ratio": r} for r in grid(ratios)]
    mix = [{"ratio": r, "lr": float(lr), "steps": float(steps or 0)} for r in grid(ratios) if r > 0 for lr in lrs]
    base = [{"ratio": 0.0, "lr": float(lr), "steps": float(n or 0)} for lr in lrs for n in (baseline_steps or (steps,))]
    return base + mix


def _key(point: Point) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, float(v)) for k, v in point.items()))


def _as_points(grid_points: "tuple[float, ...] | list[Point]") -> list[Point]:
    """Points as given, or ratios (0 added) as points."""
    if all(isinstance(p, dict) for p in grid_points):
        return [dict(p) for p in grid_points if isinstance(p, dict)]
    return [{"ratio": r} for r in grid(tuple(float(p) for p in grid_points if not isinstance(p, dict)))]


def open_study(storage: str, name: str, grid_points: "tuple[float, ...] | list[Point]", seed: int) -> optuna.Study:
    """Open (or create) the study and queue every grid point that has no live trial yet.

    `grid_points`: ratios (0 is added) or `points(...)`. Safe to call from every worker: a point queued
    twice by a race is run once (see `run_trials`).
    """
    study = optuna.create_study(study_name=name, storage=open_storage(storage),
                                sampler=optuna.samplers.RandomSampler(seed=seed),
                                direction="maximize", load_if_exists=True)
    study.set_user_attr("grid", _as_points(grid_points))
    fail_dead_trials(study)
    live = {_point(t) for t in study.get_trials(deepcopy=False, states=_LIVE)}
    for p in study.user_attrs["grid"]:
        if _key(p) not in live:
            study.enqueue_trial(p)
    return study


def _point(trial: optuna.trial.FrozenTrial) -> tuple[tuple[str, float], ...] | None:
    value = trial.system_attrs.get("fixed_params", trial.params)
    return _key(value) if value else None


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials whose worker process on this host is gone as FAIL, so they are re-queued.

    Journal storage has no heartbeat; a killed worker's trial would otherwise stay RUNNING forever.
    Trials run on other hosts are left to the RDB heartbeat.
    """
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(_WORKER_ATTR, "")
        if owner and not owner_alive(owner):
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.append(t.number)
            except RuntimeError:  # UpdateFinishedTrialError: another worker failed it first
                pass
    return failed


def remaining_trials(study: optuna.Study) -> int:
    """Grid points without a completed trial."""
    done = {_point(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return len([p for p in study.user_attrs["grid"] if _key(p) not in done])


def _is_duplicate(study: optuna.Study, trial: optuna.Trial, point: Point) -> bool:
    """Another live trial has this point and a lower number: that one runs, this one is dropped."""
    if not any(_key(point) == _key(p) for p in study.user_attrs["grid"]):
        return True  # a trial the sampler made after the queue ran dry under a race: off-grid
    return any(t.number < trial.number and _point(t) == _key(point)
               for t in study.get_trials(deepcopy=False, states=_LIVE))


def _suggest(trial: optuna.Trial, grid_points: list[Point]) -> Point:
    """The trial's point: the queued values (any axis of the grid), within the grid's ranges."""
    out = {}
    for name in sorted({k for p in grid_points for k in p}):
        values = [float(p[name]) for p in grid_points if name in p]
        out[name] = trial.suggest_float(name, min(values), max(values))
    return out


def run_trials(study: optuna.Study, objective: Callable[[Point, optuna.Trial], float],
              n_trials: int | None = None) -> optuna.Study:
    """Pop queued trials until the queue is empty (or n_trials have run in this process).

    `objective(point, trial)`. Completed trials from earlier runs are kept; duplicates are recorded
    as PRUNED without training.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid_points = study.user_attrs["grid"]

    def run_one(trial: optuna.Trial) -> float:
        trial.set_user_attr(_WORKER_ATTR, owner_id())
        point = _suggest(trial, grid_points)
        if _is_duplicate(study, trial, point):
            raise optuna.TrialPruned(f"{point} is run by another trial")
        return objective(point, trial)

    def stop_when_queue_empty(st: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if not st.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            st.stop()

    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) and n_trials != 0:
        study.optimize(run_one, n_trials=n_trials, callbacks=[stop_when_queue_empty])
    return study


def point_label(point: Point) -> str:
    """`ratio=1 lr=0.001 steps=500`: a trial's name, its checkpoint's."""
    return " ".join(f"{k}={float(v):g}" for k, v in sorted(point.items(), key=lambda kv: kv[0] != "ratio"))


def trial_checkpoint(folder: Path, study_name: str, point: Point | float) -> Path:
    """Where the trial of `point` checkpoints: one file per study and point, so the re-queued trial of a
    killed worker resumes it (the checkpoint's own fingerprint still guards data and config)."""
    p = point if isinstance(point, dict) else {"ratio": float(point)}
    return Path(folder) / study_name / (point_label(p).replace(" ", "-").replace("=", "-") + ".pt")


def trial_table(study: optuna.Study) -> list[dict[str, float]]:
    """Completed trials as rows (ratio, lr, steps, val_iou), sorted by point: the IoU-versus-ratio curve."""
    rows = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rows[_point(t)] = {**t.params, "val_iou": t.value, "trial": t.number,
                           **{k: v for k, v in t.user_attrs.items() if isinstance(v, (int, float))}}
    return [rows[k] for k in sorted(rows, key=lambda k: k or ())]


def best_point(study: optuna.Study, baseline: bool) -> Point:
    """The best completed point of the baseline (ratio 0) or of the mix (ratio > 0); first wins ties."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if (float(t.params["ratio"]) == 0.0) == baseline and t.value is not None]
    if not done:
        raise ValueError(f"study {study.study_name}: no completed {'baseline' if baseline else 'mix'} trial")
    best = max(sorted(done, key=lambda t: _point(t) or ()), key=lambda t: float(t.value or 0.0))
    return {k: float(v) for k, v in best.params.items()}


def best_ratio(study: optuna.Study) -> float:
    """The mix's best ratio (0 when the grid has no non-zero ratio)."""
    try:
        return best_point(study, baseline=False)["ratio"]
    except ValueError:
        return 0.0
