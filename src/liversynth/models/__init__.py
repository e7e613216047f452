"""Networks for EssNet: CycleGAN generator and PatchGAN discriminator, plus the joint EssNet model."""
from liversynth.models.discriminator import PatchDiscriminator
from liversynth.models.essnet import EssNet, GeneratorLosses, ImagePool
from liversynth.models.generator import ResnetGenerator

__all__ = ["EssNet", "GeneratorLosses", "ImagePool", "PatchDiscriminator", "ResnetGenerator"]
