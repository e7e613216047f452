"""liversynth: CT-to-MRI synthesis (EssNet) to train better liver segmenters on MRI."""

__version__ = "0.1.0"
