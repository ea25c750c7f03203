"""Candidate models side by side on the validation split: the figures that decide what ships.

    python -m benchmarks.compare_models NAME=MODEL.onnx [NAME=MODEL.onnx ...] [--out docs/x.txt]

Accuracy on CelebA (aligned frames and tight 0.65 crops: the #2 target), UTKFace adults,
the 600 people of `benchmarks/detection.py`'s portraits (their frames: the #17 accuracy
target's ceiling), and all validation images, with the standard error of the CelebA figures,
so a gain can be told from noise. The first model is the baseline the others are measured against.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.detection import PER_SOURCE
from facegender import manifest
from facegender.classifier import Classifier
from facegender.evaluate import benchmark_samples, population_masks, predict_rows_with
from facegender.metrics import classification_metrics

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = [("CelebA frames", "celeba", 1.0), ("CelebA tight", "celeba", 0.65),
           ("UTK 18+ frames", "utkface 18+", 1.0), ("portrait people", "portraits", 1.0), ("all frames", "all", 1.0)]


def accuracies(named: list, rows, y, masks) -> dict[str, list[float]]:
    """name -> accuracy per column; each image is decoded once per crop for all the models."""
    classifiers = [Classifier(path) for _, path in named]
    p = {}
    for crop in sorted({c for _, _, c in COLUMNS}):
        p[crop], failures = predict_rows_with(rows, classifiers, crop)
        if failures:
            raise SystemExit(f"{len(failures)} validation images failed, first {failures[0]}")
    return {name: [classification_metrics(y[masks[group]], p[crop][k][masks[group]])["accuracy"] for _, group, crop in COLUMNS]
            for k, (name, _) in enumerate(named)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=PATH.onnx; the first is the baseline")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--out", help="also write the table to this text file")
    a = ap.parse_args()

    rows = manifest.read(a.manifest)
    y = np.array([r.label for r in rows])
    portraits = {r.path for group in benchmark_samples(a.manifest, PER_SOURCE).values() for r in group}
    masks = {**population_masks(rows), "portraits": np.array([r.path in portraits for r in rows]),
             "all": np.ones(len(rows), bool)}
    named = [m.split("=", 1) if "=" in m else (Path(m).stem, m) for m in a.models]
    table = accuracies(named, rows, y, masks)
    base = table[named[0][0]]
    n_celeba = int(masks["celeba"].sum())
    lines = [f"{len(rows)} validation images, {n_celeba} CelebA; accuracy (CelebA standard error "
             f"~{np.sqrt(base[0] * (1 - base[0]) / n_celeba):.4f})",
             f"{'model':24}" + "".join(f"{c:>18}" for c, _, _ in COLUMNS)]
    for name, accs in table.items():
        cells = [f"{v:.4f}" + (f" ({v - b:+.4f})" if name != named[0][0] else "") for v, b in zip(accs, base)]
        lines.append(f"{name:24}" + "".join(f"{c:>18}" for c in cells))
    print("\n".join(lines))
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
