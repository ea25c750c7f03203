"""Tools for the shipped weights: run from the repository root as modules (`python -m tools.convert_scrfd`)."""
