"""A grid of independent trainings (seeds x arms x sweeps) run through any task runner's `map`.

The library stays engine-free: the caller passes a `map` with the builtin's contract (a function and
a list of items in, one result per item out, in order): `map` itself for one process, a
`concurrent.futures` executor's map, or a Dask client's `lambda f, xs: client.gather(client.map(f, xs))`;
a Prefect flow can pass its task runner's map the same way. Every cell is keyed, so results come back
as a dict and a cell lost or run twice by the engine is an error, not a silent gap.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cell", "MapFn", "run_cell", "run_grid"]

MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]


@dataclass(frozen=True)
class Cell:
    """One training: `fn(**kwargs)`, named by `key` (e.g. "mix/seed3"). `fn` must be importable by name
    (a module-level function) when the map sends cells to other processes."""

    key: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def run_cell(cell: Cell) -> tuple[str, Any]:
    """What a worker runs: the cell's training, returned with its key."""
    return cell.key, cell.fn(**cell.kwargs)


def run_grid(cells: Sequence[Cell], map_fn: MapFn = map) -> dict[str, Any]:
    """key -> result of every cell, through `map_fn`; raises if a key repeats, or if the engine returned
    a cell twice, dropped one or returned one that was not asked for."""
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate cell keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
    results: dict[str, Any] = {}
    for key, value in map_fn(run_cell, list(cells)):
        if key in results or key not in keys:
            raise RuntimeError(f"cell {key!r} came back twice or was never asked for")
        results[key] = value
    missing = [k for k in keys if k not in results]
    if missing:
        raise RuntimeError(f"cells never finished: {missing}")
    return {k: results[k] for k in keys}
