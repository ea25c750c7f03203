"""How much of the aligned face detect mode should show the classifier (`FaceDetector.fraction`).

    python -m benchmarks.detect_framing [--manifest manifests/v7/val.csv] > docs/detect_framing.txt

Every validation portrait of the two benchmark populations (CelebA, UTKFace adults), placed
on 250x250 as benchmarks/detection.py does, is detected once (SCRFD) and aligned at each
fraction of the CelebA frame; balanced accuracy and recall per sex, float and int8 graphs.
The portraits are edge-padded, so the larger views of UTKFace's tight crops see streaks:
read the large fractions with that in mind.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.detection import placed
from facegender.classifier import Classifier
from facegender.evaluate import benchmark_samples
from facegender.faces.detect import FaceDetector, align
from facegender.metrics import classification_metrics

FRACTIONS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default="manifests/v7/val.csv")
    a = ap.parse_args()
    rows = benchmark_samples(a.manifest, 10**9)
    print(f"default fraction: {FaceDetector().fraction}; balanced accuracy (female / male recall)")
    for precision in ("float", "int8"):
        clf, det = Classifier(precision=precision, threads=1), FaceDetector(precision=precision)
        for group, people in rows.items():
            labels, views = [], {f: [] for f in FRACTIONS}
            for r in people:
                img = placed(r, (250, 250))
                marks = det.detect(img)[2]
                if len(marks):
                    labels.append(r.label)
                    for f in FRACTIONS:
                        views[f].append(align(img, marks[0], clf.pre, f, det.template))
            cells = []
            for f in FRACTIONS:
                m = classification_metrics(np.array(labels), clf.predict(np.stack(views[f]), flip=True)[:, 1])
                cells.append(f"{f:.2f} {m['balanced_accuracy']:.4f} ({m['recall']['female']:.3f} / {m['recall']['male']:.3f})")
            print(f"{precision:5} {group:12} {len(labels):>5} found of {len(people):>5}: " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
