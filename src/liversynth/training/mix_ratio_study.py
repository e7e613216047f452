"""Optuna study over the synthetic-to-real mixing ratio, on a storage shared by any number of workers.

The grid of ratios (always including 0, the real-only baseline) is put in the study's trial queue
once; each worker process pops queued trials until none is left. Popping a queued trial is atomic
in Optuna's storages (journal file or RDB), so two workers never run the same queued trial.

Optuna's GridSampler is not used: with several processes it may hand the same grid point to two
workers, and once the grid is exhausted it re-runs a random point. A queue plus the rule "of live
trials with the same ratio, only the lowest-numbered one runs" gives exactly-once completion even
when two workers enqueue the grid at the same moment.
"""
from __future__ import annotations

import math
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

__all__ = ["best_ratio", "fail_dead_trials", "grid", "open_storage", "open_study", "remaining_trials",
           "run_study", "trial_checkpoint", "trial_table"]

_LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
_WORKER_ATTR = "worker"  # "host:pid" of the process running a trial, to spot dead workers


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


def grid(ratios: tuple[float, ...]) -> list[float]:
    """The ratios to try, sorted and de-duplicated; 0 (real only) is always one of them."""
    return sorted({0.0, *(float(r) for r in ratios)})


def open_study(storage: str, name: str, ratios: tuple[float, ...], seed: int) -> optuna.Study:
    """Open (or create) the study and queue every grid ratio that has no live trial yet.

    Safe to call from every worker: a ratio queued twice by a race is run once (see `run_study`).
    """
    study = optuna.create_study(study_name=name, storage=open_storage(storage),
                                sampler=optuna.samplers.RandomSampler(seed=seed),
                                direction="maximize", load_if_exists=True)
    study.set_user_attr("grid", grid(ratios))
    fail_dead_trials(study)
    live = {_ratio(t) for t in study.get_trials(deepcopy=False, states=_LIVE)}
    for r in study.user_attrs["grid"]:
        if r not in live:
            study.enqueue_trial({"ratio": r})
    return study


def _ratio(trial: optuna.trial.FrozenTrial) -> float | None:
    value = trial.system_attrs.get("fixed_params", trial.params).get("ratio")
    return None if value is None else float(value)


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
    """Grid ratios without a completed trial."""
    done = {_ratio(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return len([r for r in study.user_attrs["grid"] if r not in done])


def _is_duplicate(study: optuna.Study, trial: optuna.Trial, ratio: float) -> bool:
    """Another live trial has this ratio and a lower number: that one runs, this one is dropped."""
    if not any(math.isclose(ratio, r) for r in study.user_attrs["grid"]):
        return True  # a trial the sampler made after the queue ran dry under a race: off-grid
    return any(t.number < trial.number and _ratio(t) == ratio
               for t in study.get_trials(deepcopy=False, states=_LIVE))


def run_study(study: optuna.Study, objective: Callable[[float, optuna.Trial], float],
              n_trials: int | None = None) -> optuna.Study:
    """Pop queued trials until the queue is empty (or n_trials have run in this process).

    Completed trials from earlier runs are kept; duplicates are recorded as PRUNED without training.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    top = max(study.user_attrs["grid"])

    def run_one(trial: optuna.Trial) -> float:
        trial.set_user_attr(_WORKER_ATTR, owner_id())
        ratio = trial.suggest_float("ratio", 0.0, top)
        if _is_duplicate(study, trial, ratio):
            raise optuna.TrialPruned(f"ratio {ratio:g} is run by another trial")
        return objective(ratio, trial)

    def stop_when_queue_empty(st: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        if not st.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            st.stop()

    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) and n_trials != 0:
        study.optimize(run_one, n_trials=n_trials, callbacks=[stop_when_queue_empty])
    return study


def trial_checkpoint(folder: Path, study_name: str, ratio: float) -> Path:
    """Where the trial of `ratio` checkpoints: one file per study and ratio, so the re-queued trial of a
    killed worker resumes it (the checkpoint's own fingerprint still guards data and config)."""
    return Path(folder) / study_name / f"ratio-{float(ratio):g}.pt"


def trial_table(study: optuna.Study) -> list[dict[str, float]]:
    """Completed trials as rows (ratio, val_iou), sorted by ratio: the IoU-versus-ratio curve."""
    rows = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rows[t.params["ratio"]] = {"ratio": t.params["ratio"], "val_iou": t.value, "trial": t.number,
                                   **{k: v for k, v in t.user_attrs.items() if isinstance(v, (int, float))}}
    return [rows[k] for k in sorted(rows)]


def best_ratio(study: optuna.Study) -> float:
    return float(study.best_trial.params["ratio"])
