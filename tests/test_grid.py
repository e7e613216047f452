"""The training grid through a real Dask cluster (2 worker processes): every cell once, same results."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from liversynth.config import UNetConfig
from liversynth.training.grid import Cell, run_grid
from liversynth.training.unet import train_unet
from tests.conftest import blob_slices

TINY = UNetConfig(channels=(4, 8), strides=(2,), num_res_units=0, steps=2, batch_size=2, lr=1e-3, eval_every=2)


def train_cell(seed: int, ratio: float, marks: str) -> dict:
    """One tiny U-Net training; leaves a mark that fails if this cell already ran (exactly once)."""
    torch.set_num_threads(1)  # same thread count in every process: bitwise-comparable results
    fd = os.open(Path(marks) / f"r{ratio}-s{seed}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    result = train_unet(blob_slices(8, size=16, seed=1), blob_slices(8, size=16, seed=4), ratio, TINY, seed=seed,
                        progress=False)
    weights = b"".join(v.numpy().tobytes() for v in result.model.state_dict().values())
    return {"weights": hashlib.sha256(weights).hexdigest(), "loss": result.history[-1]["train_loss"]}


def _cells(marks: Path) -> list[Cell]:
    return [Cell(f"r{r}/s{s}", train_cell, {"seed": s, "ratio": r, "marks": str(marks)})
            for r in (0.0, 1.0) for s in (0, 1)]


def test_grid_on_a_dask_cluster_matches_the_sequential_run(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    (tmp_path / "seq").mkdir()
    (tmp_path / "dask").mkdir()
    sequential = run_grid(_cells(tmp_path / "seq"))
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = run_grid(_cells(tmp_path / "dask"), lambda f, xs: client.gather(client.map(f, xs, pure=False)))
        pids = {p.read_text() for p in (tmp_path / "dask").iterdir()}
    assert on_dask == sequential
    assert sorted(p.name for p in (tmp_path / "dask").iterdir()) == sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert len(sequential) == 4 and str(os.getpid()) not in pids  # ran in the workers


def test_grid_refuses_duplicates_and_lost_cells():
    cells = [Cell("a", int, {}), Cell("b", int, {})]
    with pytest.raises(ValueError):
        run_grid([cells[0], cells[0]])
    with pytest.raises(RuntimeError, match="never finished"):
        run_grid(cells, lambda f, xs: [f(xs[0])])
    with pytest.raises(RuntimeError, match="twice"):
        run_grid(cells, lambda f, xs: [f(xs[0]), f(xs[0])])
