import numpy as np
import torch

from liversynth.config import UNetConfig
from liversynth.models.predict import predict
from liversynth.models.weights import save_weights
from liversynth.models.unet import load_unet
from liversynth.training.unet import MixedSampler, augment, train_unet
from tests.conftest import blob_slices

TINY = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, steps=60, batch_size=8,
                  lr=3e-3, eval_every=30)


def test_sampler_mixes_at_the_requested_ratio():
    real, syn = blob_slices(10, prefix="r"), blob_slices(10, seed=5, prefix="s")
    syn.images[:] = 1.0  # mark synthetic samples
    gen = torch.Generator().manual_seed(0)
    x, _ = MixedSampler(real, syn, 3.0, torch.device("cpu")).sample(4000, gen)
    share = (x.flatten(1) == 1.0).all(1).float().mean().item()
    assert abs(share - 0.75) < 0.03
    x0, _ = MixedSampler(real, syn, 0.0, torch.device("cpu")).sample(500, gen)
    assert not (x0.flatten(1) == 1.0).all(1).any()


def test_augment_keeps_labels_binary_and_aligned():
    s = blob_slices(8)
    x, y = augment(torch.as_tensor(s.images), torch.as_tensor(s.labels).long(), torch.Generator().manual_seed(0))
    assert set(torch.unique(y).tolist()) <= {0, 1}
    # The bright 'liver' must still sit under the label after the shared warp.
    assert x[:, 0][y == 1].mean() > x[:, 0][y == 0].mean() + 0.4


def test_training_learns_and_round_trips(tmp_path):
    data, val = blob_slices(48, seed=1), blob_slices(16, seed=2)
    result = train_unet(data, None, 0.0, TINY, seed=0, val=val, progress=False)
    assert result.best_val_iou > 0.5, result.history
    assert [r["step"] for r in result.history] == [30, 60]
    save_weights(result.model, tmp_path / "m.pt")
    again = load_unet(tmp_path / "m.pt", TINY, torch.device("cpu"))
    np.testing.assert_array_equal(predict(again, val.images), predict(result.model, val.images))
