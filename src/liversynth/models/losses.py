"""Dice + cross-entropy for the segmenters, as MONAI's `DiceCELoss(to_onehot_y=True, softmax=True)`
computes it, in plain torch: importing MONAI for one loss cost every U-Net stage seconds at start (issue 22).

Same ops in the same order as MONAI (softmax, one-hot by scatter into float32 zeros, tp/fp/fn sums over
H, W, smooth 1e-5 on both sides, mean over batch and classes; CE on the label channel squeezed), so the
loss and its gradients are MONAI's; tests/test_native_unet.py compares them with MONAI itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DiceCE", "dice_ce", "soft_dice"]

SMOOTH = 1e-5  # MONAI's smooth_nr = smooth_dr: an empty class predicted empty scores Dice 1, not 0/0


def _one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """(B, 1, H, W) integer labels -> (B, C, H, W) float32, as MONAI's one_hot (zeros then scatter; here
    out of place, which gives the same tensor and can be vmapped)."""
    shape = list(labels.shape)
    shape[1] = num_classes
    zeros = torch.zeros(shape, dtype=torch.float, device=labels.device)
    return zeros.scatter(1, labels.long(), 1.0)


def soft_dice(logits: Tensor, target: Tensor) -> Tensor:
    """MONAI's DiceLoss(to_onehot_y=True, softmax=True): 1 - soft Dice per image and class (background
    included), averaged. `target` is (B, 1, H, W) class indices."""
    probs = torch.softmax(logits, 1)
    onehot = _one_hot(target, logits.shape[1])
    if onehot.shape != probs.shape:
        raise ValueError(f"ground truth has different shape ({onehot.shape}) from input ({probs.shape})")
    axes = list(range(2, probs.dim()))
    tp = torch.sum(probs * onehot, dim=axes)
    fp = (torch.sum(probs, dim=axes) - tp) * 0.5
    fn = (torch.sum(onehot, dim=axes) - tp) * 0.5
    numerator = 2 * tp + SMOOTH
    denominator = 2 * (tp + fp + fn) + SMOOTH
    return torch.mean(1 - numerator / denominator)


def dice_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Soft Dice + cross-entropy, weights 1 and 1: Dice copes with the liver being a small share of the
    pixels, CE gives useful gradients before the masks overlap. `logits` (B, C, H, W), `target` (B, 1, H, W)."""
    if logits.dim() != target.dim():
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)}: need B1HW labels")
    if target.shape[1] != 1:
        raise ValueError(f"target {tuple(target.shape)}: one channel of class indices expected")
    dice = soft_dice(logits, target)
    ce = F.cross_entropy(logits, torch.squeeze(target, dim=1).long())
    return 1.0 * dice + 1.0 * ce


class DiceCE(nn.Module):
    """`dice_ce` as a module, where a model holds its loss (EssNet.seg_loss; benchmarks swap it)."""

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_ce(logits, target)
