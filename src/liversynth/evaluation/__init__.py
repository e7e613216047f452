"""Evaluation: segmentation scores, paired intervals, arm comparisons, the report and its figures."""
