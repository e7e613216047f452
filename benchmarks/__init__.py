"""Benchmarks for `make bench` (not part of `make test`): see benchmarks/run.py."""
