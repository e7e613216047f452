"""Training: EssNet/CycleGAN generators, MONAI U-Nets, the mix-ratio study, checkpoints and the resumable loop."""
