"""The plain-torch U-Net and DiceCE (liversynth.models.seg_unet, .losses) are MONAI's, exactly: same weights
layout, same initial weights after the same seed, same output, same loss and gradients. They replaced MONAI
in the stages (issue 22: MONAI's import cost every U-Net stage seconds), so results must not move."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from liversynth.models.losses import DiceCE, dice_ce
from liversynth.models.seg_unet import SegUNet

monai_nets = pytest.importorskip("monai.networks.nets")
monai_losses = pytest.importorskip("monai.losses")

REPO = Path(__file__).resolve().parent.parent
_PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
_SEG = tuple(_PARAMS["essnet"]["seg_channels"])
_UNET = _PARAMS["unet"]
# (channels, strides, num_res_units): EssNet's segmenter and the study U-Net from params.yaml, a deeper
# two-subunit one (params-paper.yaml's kind) and the plain-convolution one the quick tests use.
CONFIGS = [
    (_SEG, (2,) * (len(_SEG) - 1), 1),
    (tuple(_UNET["channels"]), tuple(_UNET["strides"]), int(_UNET["num_res_units"])),
    ((8, 16, 32, 64), (2, 2, 2), 2),
    ((4, 8), (2,), 0),
]


def _pair(channels: tuple, strides: tuple, res: int, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    theirs = monai_nets.UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=channels, strides=strides,
                             num_res_units=res)
    after_theirs = torch.get_rng_state()
    torch.manual_seed(seed)
    ours = SegUNet(1, 2, channels, strides, num_res_units=res)
    assert torch.equal(torch.get_rng_state(), after_theirs)  # the same random draws, no more, no fewer
    return theirs, ours


@pytest.mark.parametrize("channels,strides,res", CONFIGS)
def test_same_seed_same_weights_and_output(channels: tuple, strides: tuple, res: int) -> None:
    theirs, ours = _pair(channels, strides, res, seed=3)
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape and torch.equal(a[key], b[key]), key
    assert [type(m).__name__ for m in theirs.modules()][1:] == [type(m).__name__ for m in ours.modules()][1:]
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for train in (True, False):
        theirs.train(train), ours.train(train)
        out_theirs, out_ours = theirs(x), ours(x)
        assert out_ours.shape == out_theirs.shape == (2, 2, 32, 32)
        assert torch.equal(out_ours, out_theirs)  # the same ops in the same order: bitwise the same


def test_monai_weights_load_into_the_native_unet(tmp_path: Path) -> None:
    """Weights saved by earlier runs (MONAI's UNet's state_dict) load, strictly, and predict the same."""
    channels, strides, res = CONFIGS[1]
    torch.manual_seed(11)
    theirs = monai_nets.UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=channels, strides=strides,
                             num_res_units=res).eval()
    torch.save({k: v.detach().clone() for k, v in theirs.state_dict().items()}, tmp_path / "m.pt")
    torch.manual_seed(12)  # different initial weights, so loading has to overwrite them all
    ours = SegUNet(1, 2, channels, strides, num_res_units=res)
    ours.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True), strict=True)
    ours.eval()
    x = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("seed", [0, 1])
def test_dice_ce_is_monais_loss_and_gradient(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 2, 24, 24, generator=gen) * 3
    target = (torch.rand(4, 1, 24, 24, generator=gen) < 0.3).long()
    target[0] = 0  # an image without liver: the smoothing terms decide its Dice
    mine, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours_loss = dice_ce(mine, target)
    ref_loss = monai_losses.DiceCELoss(to_onehot_y=True, softmax=True)(theirs, target)
    assert abs(ours_loss.item() - ref_loss.item()) <= 1e-6
    assert torch.equal(ours_loss, ref_loss)  # in fact bitwise: the same ops in the same order
    assert torch.equal(DiceCE()(logits, target), dice_ce(logits, target))
    ours_loss.backward(), ref_loss.backward()
    assert mine.grad is not None and theirs.grad is not None
    assert torch.equal(mine.grad, theirs.grad)


def test_a_training_step_moves_both_the_same_way() -> None:
    """One Adam step on each, from the same seed and batch: the same weights after it."""
    channels, strides, res = CONFIGS[0]
    theirs, ours = _pair(channels, strides, res, seed=5)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 1, 16, 16, generator=gen), (torch.rand(2, 1, 16, 16, generator=gen) < 0.4).long()
    ref_fn = monai_losses.DiceCELoss(to_onehot_y=True, softmax=True)
    for model, loss_fn in ((theirs, ref_fn), (ours, dice_ce)):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn(model(x), y).backward()
        opt.step()
    for (key, a), b in zip(theirs.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(b, a), key


def test_bf16_autocast_matches_too() -> None:
    """train_unet's cpu_bf16 runs model and loss under CPU bf16 autocast: the same there as well."""
    channels, strides, res = CONFIGS[1]
    theirs, ours = _pair(channels, strides, res, seed=7)
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(2, 1, 32, 32, generator=gen), (torch.rand(2, 1, 32, 32, generator=gen) < 0.4).long()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = monai_losses.DiceCELoss(to_onehot_y=True, softmax=True)(theirs(x), y)
        loss = dice_ce(ours(x), y)
    assert torch.equal(loss, ref)
