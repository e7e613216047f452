"""Synthesis: apply a trained CT->MRI generator to CT slices, and measure translation quality."""
