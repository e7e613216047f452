"""Tracking: MLflow runs per stage, lineage tags, the model registry and its promotion gate."""
