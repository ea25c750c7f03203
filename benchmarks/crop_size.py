"""Accuracy against crop size: models side by side on the original task's kind of input.

    python -m benchmarks.crop_size MODEL.onnx [MODEL.onnx ...]

The same 10,000 tight CelebA validation crops as `throughput.py` (23x30 to ~420x600 JPEGs,
median ~120 px wide, like the original task's data), classified through the same decode and
preprocessing as `process`, with accuracy per crop-width band. Why: a model can gain on the
low-resolution validation frames and lose on larger, sharper crops; this shows it.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.throughput import build_folder
from facegender import manifest
from facegender.classifier import Classifier
from facegender.metrics import classification_metrics
from facegender.predict import model_inputs

ROOT = Path(__file__).resolve().parents[1]

BANDS = [(0, 50), (50, 80), (80, 120), (120, 200), (200, 10_000)]  # crop width, pixels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--images", type=int, default=10_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        truth = build_folder(manifest.read(a.manifest), Path(tmp), a.images)
        paths = [Path(tmp) / f for f in sorted(truth)]
        widths = np.array([Image.open(p).width for p in paths])
        y = np.array([manifest.CLASSES.index(truth[p.name]) for p in paths])
        p_female = {}
        for path in a.models:
            clf = Classifier(path)
            faces = [model_inputs(p, clf.pre)[0][0][0] for p in paths]  # process's decode + cut (one view), per model size
            p_female[Path(path).stem] = np.concatenate([clf.predict(np.stack(faces[s:s + 256]))[:, 1]
                                                        for s in range(0, len(faces), 256)])
    print(f"{'crop width px':>14} {'crops':>6} " + " ".join(f"{n:>20}" for n in p_female))
    for lo, hi in BANDS + [(0, 10_000)]:
        m = (widths >= lo) & (widths < hi)
        label = "all" if (lo, hi) == (0, 10_000) else f"{lo}-{hi if hi < 10_000 else ''}"
        print(f"{label:>14} {m.sum():>6} " + " ".join(f"{classification_metrics(y[m], p[m])['accuracy']:>20.4f}"
                                                      for p in p_female.values()))

if __name__ == "__main__":
    main()
