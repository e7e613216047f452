"""Optuna study over the synthetic-to-real mixing ratio, on a storage shared by any number of workers.

A journal file storage lets several processes (or machines, with an RDB URL instead) add trials to
one study; the grid sampler makes the set of ratios explicit and always includes 0, the real-only
baseline, so "does synthetic help at all" is answered by the same study.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock


def open_storage(storage: str) -> optuna.storages.BaseStorage | str:
    """A path is a journal file (safe across processes via a lock file); a URL is an RDB (PostgreSQL)."""
    if "://" in storage:
        return storage
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def open_study(storage: str, name: str, ratios: tuple[float, ...], seed: int) -> optuna.Study:
    if 0.0 not in ratios:
        ratios = (0.0, *ratios)  # the baseline is always measured
    sampler = optuna.samplers.GridSampler({"ratio": list(ratios)}, seed=seed)
    return optuna.create_study(study_name=name, storage=open_storage(storage), sampler=sampler,
                               direction="maximize", load_if_exists=True)


def remaining_trials(study: optuna.Study) -> int:
    grid = study.sampler._search_space["ratio"]  # noqa: SLF001  (GridSampler keeps its grid here)
    done = {t.params.get("ratio") for t in study.get_trials(deepcopy=False,
                                                              states=(optuna.trial.TrialState.COMPLETE,))}
    return len([r for r in grid if r not in done])


def run_study(study: optuna.Study, objective: Callable[[float, optuna.Trial], float],
              n_trials: int | None = None) -> optuna.Study:
    """Run trials until the grid is covered (completed trials from earlier runs are reused)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n = remaining_trials(study) if n_trials is None else n_trials
    if n > 0:
        study.optimize(lambda t: objective(t.suggest_float("ratio", 0.0, max(study.sampler._search_space["ratio"])), t),
                       n_trials=n)
    return study


def trial_table(study: optuna.Study) -> list[dict[str, float]]:
    """Completed trials as rows (ratio, val_iou), sorted by ratio: the IoU-versus-ratio curve."""
    rows = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        rows[t.params["ratio"]] = {"ratio": t.params["ratio"], "val_iou": t.value, "trial": t.number,
                                   **{k: v for k, v in t.user_attrs.items() if isinstance(v, (int, float))}}
    return [rows[k] for k in sorted(rows)]


def best_ratio(study: optuna.Study) -> float:
    return float(study.best_trial.params["ratio"])
