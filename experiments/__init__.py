"""Experiments: run from the repository root as modules (`python -m experiments.original_experiments`)."""
