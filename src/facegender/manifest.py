"""The manifest: a CSV of labelled images, the one format every stage reads and writes.

Columns: path (relative to the manifest's folder, class folder included, as the original's
"folder/name" first column), label (0 = male, 1 = female), then what evaluation and training
need to know about the image's source.
"""
from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .errors import InputError

CLASSES = ("male", "female")  # index = label, as in the original task


@dataclass
class Row:
    path: str  # image path, relative to the manifest's folder
    label: int  # 0 = male, 1 = female
    source: str = ""  # data set the image came from (its root folder's name)
    group: str = ""  # who is in it: images of one group never straddle train/validation
    x_stretch: float = 1.0  # >1: pixels stored stretched horizontally (squeezed frames)
    min_crop: float = 0.85  # tightest centre crop (fraction) training may take of this framing
    age: str = ""  # years, where the source says (UTKFace)
    race: str = ""  # UTKFace race code, where the source says
    pad: str = ""  # "left,top,right,bottom" pixels of border to add (edge-repeated) to reach the aligned frame


COLUMNS = [f.name for f in fields(Row)]


def load_frame(row: Row):
    """The row's image as the aligned frame its framing describes: decoded (images.load_rgb)
    and, for sources stored as a tighter window of that frame (MTFL), grown by `row.pad`."""
    from .images import load_rgb

    img = load_rgb(row.path)
    if not row.pad:
        return img
    import numpy as np
    from PIL import Image

    left, top, right, bottom = (int(v) for v in row.pad.split(","))
    return Image.fromarray(np.pad(np.asarray(img), ((top, bottom), (left, right), (0, 0)), mode="edge"))


def write(path: str | os.PathLike, rows: list[Row]) -> None:
    """Write atomically, paths made relative to the manifest's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            d = asdict(r)
            d["path"] = os.path.relpath(r.path, path.parent.resolve())
            w.writerow(d)
    os.replace(tmp, path)


def read(path: str | os.PathLike) -> list[Row]:
    """Read a manifest; paths come back absolute."""
    path = Path(path)
    base = path.parent.resolve()
    rows = []
    with open(path, newline="") as f:
        for d in csv.DictReader(f):
            rows.append(Row(
                path=os.path.normpath(base / d["path"]), label=int(d["label"]), source=d.get("source", ""),
                group=d.get("group", ""), x_stretch=float(d.get("x_stretch") or 1.0),
                min_crop=float(d.get("min_crop") or 0.85), age=d.get("age", ""), race=d.get("race", ""),
                pad=d.get("pad", ""),
            ))
    return rows


def write_answers(path: str | os.PathLike, rows: list[Row], p_female) -> None:
    """A model's P(female) per row as CSV (path relative to the CSV's folder, p_female), atomically:
    a teacher's answers for `train --teacher`, computed in another environment if need be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "p_female"])
        for r, p in zip(rows, p_female):
            w.writerow([os.path.relpath(r.path, path.parent.resolve()), f"{p:.5f}"])
    os.replace(tmp, path)


def read_answers(path: str | os.PathLike, rows: list[Row]) -> list[float]:
    """P(female) per row from `write_answers`' CSV; every row must be there."""
    base = Path(path).parent.resolve()
    with open(path, newline="") as f:
        answers = {os.path.normpath(base / d["path"]): float(d["p_female"]) for d in csv.DictReader(f)}
    missing = [r.path for r in rows if r.path not in answers]
    if missing:
        raise InputError(f"{path} has no answer for {len(missing)} of the {len(rows)} images asked for, e.g. {missing[0]}")
    return [answers[r.path] for r in rows]
