"""Inference: apply trained models to prepared slices and, through the readers, to new scans.

`scan` reads a scan and writes results on its grid, `apply` runs a model with `prepare`'s preprocessing
and its inverse, `loading` loads a registered model weights-only, `pyfunc` is the MLflow model that
carries its preprocessing, `batch` is the folder-level loop behind flows/segment_folder.py.
"""
