"""Models: the networks (CycleGAN ResNet generator, PatchGAN discriminator, EssNet, and the U-Net builder)."""
from liversynth.models.discriminator import PatchDiscriminator
from liversynth.models.essnet import EssNet, GeneratorLosses, ImagePool
from liversynth.models.generator import ResnetGenerator
from liversynth.models.unet import build_unet

__all__ = ["EssNet", "GeneratorLosses", "ImagePool", "PatchDiscriminator", "ResnetGenerator", "build_unet"]
