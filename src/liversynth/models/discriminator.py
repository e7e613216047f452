"""The 70x70 PatchGAN discriminator (Isola et al. 2017) used by CycleGAN and EssNet."""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Maps an image to a map of real/fake scores, one per overlapping patch.

    There is no final sigmoid: EssNet trains with the least-squares (LSGAN) loss on raw scores.
    """

    def __init__(self, in_ch: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        # No norm on the first layer, as in the reference: normalising the raw image input hurts.
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last widening layer keeps resolution (receptive field 70)
            layers += [
                nn.Conv2d(ch, out, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
