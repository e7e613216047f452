"""Inference: apply trained models to prepared slices (and, through the readers, to new scans)."""
