"""What a run cannot get past, as types: library code raises these and never exits; the CLI
prints the message on one line and returns an exit code (cli.main)."""
from __future__ import annotations


class FacegenderError(Exception):
    """Base of facegender's run-level errors; str() is the whole message for the user."""


class ModelError(FacegenderError):
    """The model file is missing, damaged or not a facegender model: one clear message."""


class ConfigError(FacegenderError):
    """Settings that cannot work: an unknown model, optimizer, device or recipe step."""


class InputError(FacegenderError):
    """Data that cannot be used: a tree without male/ and female/, images that failed, missing answers."""
