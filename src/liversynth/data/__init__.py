"""Data: read raw scans, prepare normalised slices with patient splits, validate them; built-in datasets."""
