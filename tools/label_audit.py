"""Candidates for the label audit: faces every model is sure are of the other sex.

    python tools/label_audit.py manifests/v7/val.csv --model a.onnx --model b.onnx \
        [--teacher runs/gender_net_val.csv] --out runs/audit

Writes candidates.csv (file, label, each model's P(female)) and sheet-N.png contact sheets
(each face numbered, its label and the models' mean P(female) under it) to look at. The
decisions go into labels/audit.csv by hand (see facegender.training.audit).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facegender import manifest
from facegender.classifier import Classifier
from facegender.evaluate import predict_rows_with
from facegender.manifest import CLASSES, load_frame, read_answers
from facegender.training.audit import key_of

TILE, PER_SHEET = 128, 48


def sheets(rows, mean_p, out: Path) -> None:
    for s in range(0, len(rows), PER_SHEET):
        part = rows[s:s + PER_SHEET]
        sheet = Image.new("RGB", (8 * TILE, ((len(part) + 7) // 8) * (TILE + 16)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, r in enumerate(part):
            img = load_frame(r)
            img.thumbnail((TILE, TILE))
            x, y = (i % 8) * TILE, (i // 8) * (TILE + 16)
            sheet.paste(img, (x, y))
            draw.text((x + 2, y + TILE), f"{s + i} {CLASSES[r.label][0]} p={mean_p[s + i]:.2f}", fill="black")
        sheet.save(out / f"sheet-{s // PER_SHEET}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--model", action="append", required=True, help="ONNX model; repeat")
    ap.add_argument("--teacher", action="append", default=[], help="CSV of path,p_female (manifest.write_answers); repeat")
    ap.add_argument("--sure", type=float, default=0.9, help="every model's P(other sex) at least this")
    ap.add_argument("--out", default="runs/audit")
    a = ap.parse_args()
    rows = manifest.read(a.manifest)
    answers = predict_rows_with(rows, [Classifier(m, threads=1) for m in a.model])[0]
    answers += [np.array(read_answers(t, rows)) for t in a.teacher]
    p = np.stack(answers, 1)
    against = np.where(np.array([r.label for r in rows])[:, None] == 1, 1 - p, p)
    picked = np.flatnonzero((against >= a.sure).all(1))
    picked = picked[np.argsort(-against[picked].min(1))]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [Path(m).stem for m in a.model + a.teacher]
    with open(out / "candidates.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n", "file", "label", "source", *names])
        for n, i in enumerate(picked):
            w.writerow([n, key_of(rows[i].path), CLASSES[rows[i].label], rows[i].source, *(f"{v:.3f}" for v in p[i])])
    sheets([rows[i] for i in picked], p[picked].mean(1), out)
    by_source = {}
    for i in picked:
        by_source[rows[i].source] = by_source.get(rows[i].source, 0) + 1
    print(f"{len(picked)} of {len(rows)} faces contradicted by every model at >= {a.sure}: {by_source}")


if __name__ == "__main__":
    main()
