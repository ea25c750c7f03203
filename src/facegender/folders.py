"""A labelled class-folder tree (male/, female/) read as manifest rows: how each known data
set is framed and who is in each image. Core, not training: `evaluate` reads class folders too."""
from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .images import IMAGE_SUFFIXES
from .manifest import CLASSES, Row


@dataclass(frozen=True)
class Framing:
    x_stretch: float = 1.0  # horizontal stretch of the stored pixels
    min_crop: float = 0.85  # tightest centre crop training may take: how loose the framing is
    pad: str = ""  # border (left,top,right,bottom px, edge-repeated) that turns the stored window into the aligned frame


# Geometry of the data sets in ../shared/data (see its README); any other tree is taken to
# hold tight face crops, like the original task's data.
KNOWN_FRAMINGS = {
    "celeba-89x109": Framing(min_crop=0.55),  # aligned 178x218 frame: face is the middle ~60%
    "celeba-64x64": Framing(x_stretch=218 / 178, min_crop=0.55),  # same frame squeezed to a square
    "utkface": Framing(min_crop=0.75),  # aligned crop with some hair and background
    "celeba-112x137": Framing(min_crop=0.55),  # the aligned frame at 63%
    "allagefaces": Framing(min_crop=0.7),  # aligned face with a margin of hair and background
    "scut-fbp5500": Framing(min_crop=0.6),  # frontal portrait, hair and shoulders in the frame
    # 128x160 with the eyes at (44.6, 64) and (83.4, 64): CelebA's aligned frame (eyes 40.1 px apart at y 112,
    # FRAME_SIZE 178x218) at 1/1.034, less 22 px each side, 44 above, 7 below; padded back it is that frame
    "mtfl": Framing(min_crop=0.55, pad="22,44,22,7"),
}
AFLW_BLOCK = 500  # AFLW image ids per group: its bursts of one person sit on consecutive ids (median gap 19)


def group_of(name: str, file: str, meta: dict) -> str:
    """Who is in an image, as far as the source tells: images of one group never straddle
    train and validation. CelebA names its people; MTFL's AFLW photos are split by blocks of
    image ids and its web photos by photo (net_<photo>_<face>); elsewhere every image is its own."""
    if meta.get("celeba_identity"):
        return f"celeba:{meta['celeba_identity']}"
    if name == "mtfl" and file.startswith("aflw_"):
        return f"mtfl:aflw-{int(file.split('image')[1].split('.')[0]) // AFLW_BLOCK}"
    if name == "mtfl" and file.startswith("net_"):
        return f"mtfl:net-{file.split('_')[1]}"
    return f"{name}:{file}"


def source_of(name: str, meta: dict) -> str:
    """The source evaluation reports: the tree's name, with MTFL's two collections apart."""
    return f"{name}-{meta['source']}" if name == "mtfl" and meta.get("source") else name


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def scan(root: Path, report: Counter) -> list[tuple[Row, str]]:
    """Rows of one class-folder tree, each with its file hash."""
    name = root.resolve().name
    framing = KNOWN_FRAMINGS.get(name, Framing())
    extra = {}
    labels_csv = root / "labels.csv"
    if labels_csv.exists():
        with open(labels_csv, newline="") as f:
            extra = {d["file"]: d for d in csv.DictReader(f)}
    out = []
    for label, cls in enumerate(CLASSES):
        folder = root / cls
        if not folder.is_dir():
            raise InputError(f"{root} has no {cls}/ folder: prepare needs male/ and female/")
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
                report[f"{name}: not an image file, left out"] += 1
                continue
            meta = extra.get(p.name, {})
            if meta.get("gender") and meta["gender"] != cls:
                report[f"{name}: folder label disagrees with labels.csv (folder kept)"] += 1
            row = Row(path=str(p.resolve()), label=label, source=source_of(name, meta), group=group_of(name, p.name, meta),
                      x_stretch=framing.x_stretch, min_crop=framing.min_crop,
                      age=meta.get("age", ""), race=meta.get("race", ""), pad=framing.pad)
            out.append((row, _sha1(p)))
    return out
