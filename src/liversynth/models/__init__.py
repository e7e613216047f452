"""Models: the networks (CycleGAN ResNet generator, PatchGAN discriminator, EssNet, the U-Net builder),
their weights on disk and their loaders, and prediction. Import the module you need
(liversynth.models.generator, ...): a package-level import would pull MONAI and the U-Net into code,
and DVC deps, that use only the generator."""
