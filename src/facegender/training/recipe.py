"""Recipes: every stage that made a model, in one TOML file, run in order by one command.

    facegender train --recipe recipes/default.toml

Each `[[step]]` names a verb (prepare, train, average, export, quantize, evaluate, command)
and that verb's arguments, the same names as its function's (`TrainConfig` fields for
train). The costly steps are not done twice: a prepare or train step whose output is there
is skipped, a train step with a `last.pt` but no summary resumes, and a command step whose
`creates` path is there is skipped, so an interrupted recipe is continued by running the
same command again. Average, export, quantize and evaluate (seconds to minutes) always run.
"""
from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from ..errors import ConfigError, FacegenderError


def _prepare(step: dict) -> None:
    from .prepare import prepare

    prepare(step["roots"], step["out"], step.get("val_ratio", 0.1), step.get("seed", 0), step.get("keep_split", ""),
            step.get("audit", ""))


def _train(step: dict) -> None:
    from .train import TrainConfig, train

    resume = (Path(step["out_dir"]) / "last.pt").exists()
    train(TrainConfig(**{**step, "resume": resume}))


def _export(step: dict) -> None:
    import json

    from .export import export

    card = json.loads(Path(step["card"]).read_text()) if step.get("card") else None
    export(step["checkpoint"], step["out"], card=card, mirror_margin=step.get("mirror_margin", 0.0),
           half_weights=step.get("half_weights", False), calibrate=step.get("calibrate", ""))


def _average(step: dict) -> None:
    from .soup import average

    average(step["checkpoints"], step["out"])


def _quantize(step: dict) -> None:
    if step.get("detector"):
        from .quantize_detector import quantize_detector
        quantize_detector(step["model"], step["out"], step["calibration"], **{k: step[k] for k in ("images",) if k in step})
        return
    from .quantize import quantize

    quantize(step["model"], step["out"], step["calibration"], **{k: step[k] for k in ("images", "float_nodes") if k in step})


def _evaluate(step: dict) -> None:
    from argparse import Namespace

    from ..evaluate import evaluate_cli

    models = step.get("model")
    evaluate_cli(Namespace(data=step["data"], model=[models] if isinstance(models, str) else models,
                           crop=step.get("crop", 1.0), out=step["out"], limit=step.get("limit", 0),
                           occlude=step.get("occlude", "")))


def _command(step: dict) -> None:
    """A program outside facegender (e.g. a teacher in the peer's environment), run as given."""
    import subprocess

    subprocess.run(step["run"], check=True)
    if not Path(step["creates"]).exists():
        raise FacegenderError(f"{' '.join(step['run'])} did not create {step['creates']}")


VERBS = {"prepare": _prepare, "train": _train, "average": _average, "export": _export, "quantize": _quantize,
         "evaluate": _evaluate, "command": _command}
FINISHED = {  # what a finished costly step leaves behind
    "prepare": lambda s: Path(s["out"]) / "val.csv",
    "train": lambda s: Path(s["out_dir"]) / "summary.json",
    "command": lambda s: Path(s["creates"]),
}


SETTINGS = {  # what each verb reads; a step with anything else is a typo, refused before any work
    "prepare": {"roots", "out", "val_ratio", "seed", "keep_split", "audit"},
    "average": {"checkpoints", "out"},
    "export": {"checkpoint", "out", "card", "mirror_margin", "half_weights", "calibrate"},
    "quantize": {"model", "out", "calibration", "images", "float_nodes", "detector"},
    "evaluate": {"data", "model", "crop", "out", "limit", "occlude"},
    "command": {"run", "creates"},
}


def load(path: str) -> list[dict]:
    from .train import TrainConfig

    with open(path, "rb") as f:
        steps = tomllib.load(f).get("step", [])
    for i, step in enumerate(steps, 1):
        verb = step.get("verb")
        if verb not in VERBS:
            raise ConfigError(f"{path}: step {i} has verb {verb!r}; choose one of {', '.join(VERBS)}")
        known = {f.name for f in fields(TrainConfig)} if verb == "train" else SETTINGS[verb]
        unknown = set(step) - known - {"verb", "note"}
        if unknown:
            raise ConfigError(f"{path}: step {i} ({verb}) has unknown settings {sorted(unknown)}")
    return steps


def run(path: str, only: list[int] | None = None) -> None:
    """Run the recipe's steps in order (or only the numbered ones), skipping finished ones."""
    steps = load(path)
    for i, step in enumerate(steps, 1):
        args = {k: v for k, v in step.items() if k not in ("verb", "note")}
        verb = step["verb"]
        if only and i not in only:
            continue
        if verb in FINISHED and FINISHED[verb](args).exists():
            print(f"step {i}/{len(steps)} {verb}: done before ({FINISHED[verb](args)})")
            continue
        print(f"step {i}/{len(steps)} {verb}: {step.get('note', '')}", flush=True)
        VERBS[verb](args)
