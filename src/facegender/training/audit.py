"""The label audit: faces whose label the models contradict, looked at and decided by a person.

`tools/label_audit.py` lists the candidates (every model sure of the other sex) with a contact
sheet; a person looks at each and writes the decision into `labels/audit.csv`:

    file,label,decision,note
    mtfl/female/aflw_0012-image00345.webp,female,relabel,bearded man
    utkface/male/1_0_0_2017.jpg,male,drop,two faces

`file` is <data folder>/<class folder>/<name> (as under ../shared/data), `label` the class it
was filed under, `decision` one of relabel (the other class), drop (no usable face, or no
telling) or keep (the label is right; the models are wrong). `prepare --audit` applies it and
counts what it changed, so the validation figures are on labels someone has checked.
"""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from ..manifest import CLASSES, Row

DECISIONS = ("relabel", "drop", "keep")


def key_of(path: str) -> str:
    """<data folder>/<class folder>/<name>: how the audit names an image."""
    p = Path(path)
    return f"{p.parent.parent.name}/{p.parent.name}/{p.name}"


def read_audit(path: str) -> dict[str, dict]:
    with open(path, newline="") as f:
        decided = {d["file"]: d for d in csv.DictReader(f)}
    for file, d in decided.items():
        if d["decision"] not in DECISIONS or d["label"] not in CLASSES:
            raise ValueError(f"{path}: {file}: decision must be one of {DECISIONS} and label one of {CLASSES}")
    return decided


def apply_audit(items: list[tuple[Row, str]], path: str, report: Counter) -> list[tuple[Row, str]]:
    """`items` with the audit's relabellings and drops made, each counted in `report`."""
    decided = read_audit(path)
    out, seen = [], set()
    for row, digest in items:
        d = decided.get(key_of(row.path))
        if d is None or d["decision"] == "keep":
            out.append((row, digest))
        elif CLASSES[row.label] != d["label"]:
            raise ValueError(f"{path}: {d['file']} is filed as {CLASSES[row.label]}, the audit says {d['label']}")
        elif d["decision"] == "drop":
            report["label audit: dropped"] += 1
        else:
            row.label = 1 - row.label
            report["label audit: relabelled"] += 1
            out.append((row, digest))
        seen.add(key_of(row.path))
    missing = set(decided) - seen
    if missing:
        report["label audit: decisions for images not found"] += len(missing)
    return out
