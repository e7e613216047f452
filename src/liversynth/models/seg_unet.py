"""MONAI's 2D residual U-Net in plain torch: importing MONAI takes seconds (its __init__ imports every
submodule), and a stage that trains a U-Net paid them before its first step (issue 22, "a quick stage start").

The reproduction is exact, not approximate, so nothing measured before changes:
- the module tree is MONAI's (`UNet.model` = nested `Sequential(down, SkipConnection(subblock), up)`,
  `ResidualUnit.conv.unit{i}`/`.residual`, `Convolution.conv`/`.adn` with ADN's `N`, `D`, `A`), so
  `state_dict()` keys and shapes are MONAI's and weights saved by earlier runs load unchanged;
- layers are built in MONAI's order (bottom block first, then each level's down then up path), so after
  `torch.manual_seed(s)` the initial weights are bitwise MONAI's;
- the forward pass runs the same ops in the same order (residual branch first, then `conv(x) + res`).

Only what liversynth uses is kept: 2D, kernel size 3, PReLU, instance norm, dropout 0, bias, "NDA" order.
tests/test_native_unet.py compares it with MONAI itself.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ADN", "Convolution", "ResidualUnit", "SegUNet", "SkipConnection"]

_KERNEL, _PAD = 3, 1  # MONAI's default kernel size and its same_padding


class ADN(nn.Sequential):
    """MONAI's ADN at UNet's defaults, in "NDA" order: instance norm (no affine), dropout p=0, PReLU.

    The p=0 dropout does nothing, but MONAI has it, and keeping it keeps the module tree (and printouts)
    MONAI's."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.add_module("N", nn.InstanceNorm2d(channels))
        self.add_module("D", nn.Dropout(p=0.0))
        self.add_module("A", nn.PReLU())


class Convolution(nn.Sequential):
    """MONAI's Convolution: a 3x3 conv (or transposed conv, which doubles the size at stride 2), then ADN
    unless `conv_only` (a network's logits)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, conv_only: bool = False,
                 is_transposed: bool = False) -> None:
        super().__init__()
        conv: nn.Module
        if is_transposed:  # output_padding = stride - 1: MONAI's stride_minus_kernel_padding(1, stride)
            conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=_KERNEL, stride=stride,
                                      padding=_PAD, output_padding=stride - 1, groups=1, bias=True, dilation=1)
        else:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=_KERNEL, stride=stride, padding=_PAD,
                             dilation=1, groups=1, bias=True)
        self.add_module("conv", conv)
        if not conv_only:
            self.add_module("adn", ADN(out_channels))


class ResidualUnit(nn.Module):
    """MONAI's ResidualUnit: `subunits` Convolutions (the first strided) plus a residual path, an identity
    when shapes match, else a conv (3x3 strided, or 1x1 when only the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, subunits: int = 2,
                 last_conv_only: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential()
        self.residual: nn.Module = nn.Identity()
        subunits = max(1, subunits)
        channels, unit_stride = in_channels, stride
        for su in range(subunits):  # built before the residual conv: MONAI's order of random draws
            unit = Convolution(channels, out_channels, unit_stride, conv_only=last_conv_only and su == subunits - 1)
            self.conv.add_module(f"unit{su:d}", unit)
            channels, unit_stride = out_channels, 1
        if stride != 1 or in_channels != out_channels:
            kernel, pad = (_KERNEL, _PAD) if stride != 1 else (1, 0)
            self.residual = nn.Conv2d(in_channels, out_channels, kernel, stride, pad, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        res: Tensor = self.residual(x)  # MONAI's order: residual first
        cx: Tensor = self.conv(x)
        return cx + res


class SkipConnection(nn.Module):
    """The U-Net skip: the input concatenated (channels) with what the deeper levels make of it."""

    def __init__(self, submodule: nn.Module) -> None:
        super().__init__()
        self.submodule = submodule

    def forward(self, x: Tensor) -> Tensor:
        y = self.submodule(x)
        return torch.cat([x, y], dim=1)


class SegUNet(nn.Module):
    """`monai.networks.nets.UNet(spatial_dims=2, in_channels, out_channels, channels, strides,
    num_res_units=...)` with every other argument at MONAI's default; same weights layout, init and output."""

    def __init__(self, in_channels: int, out_channels: int, channels: Sequence[int], strides: Sequence[int],
                 num_res_units: int = 0) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("the length of `channels` should be no less than 2.")
        if len(strides) != len(channels) - 1:
            raise ValueError("the length of `strides` should equal `len(channels) - 1`.")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.channels, self.strides = tuple(channels), tuple(strides)
        self.num_res_units = num_res_units
        self.model = self._block(in_channels, out_channels, self.channels, self.strides, True)

    def _block(self, inc: int, outc: int, channels: Sequence[int], strides: Sequence[int], is_top: bool) -> nn.Module:
        """One level, built bottom-up as MONAI does: the deeper levels first, then this level's down and up
        paths (the order in which the layers draw their random initial weights)."""
        c, s = channels[0], strides[0]
        subblock: nn.Module
        if len(channels) > 2:
            subblock = self._block(c, c, channels[1:], strides[1:], False)
            upc = c * 2
        else:
            subblock = self._down(c, channels[1], 1)  # the bottom layer
            upc = c + channels[1]
        down = self._down(inc, c, s)
        up = self._up(upc, outc, s, is_top)
        return nn.Sequential(down, SkipConnection(subblock), up)

    def _down(self, inc: int, outc: int, stride: int) -> nn.Module:
        if self.num_res_units > 0:
            return ResidualUnit(inc, outc, stride, subunits=self.num_res_units)
        return Convolution(inc, outc, stride)

    def _up(self, inc: int, outc: int, stride: int, is_top: bool) -> nn.Module:
        conv = Convolution(inc, outc, stride, conv_only=is_top and self.num_res_units == 0, is_transposed=True)
        if self.num_res_units > 0:
            return nn.Sequential(conv, ResidualUnit(outc, outc, 1, subunits=1, last_conv_only=is_top))
        return conv

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model(x)
        return out
