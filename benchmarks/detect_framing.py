"""How much of the aligned face detect mode shows the classifier (`detect.VIEWS["scrfd"]`): one view or
two averaged, at fractions 0.6-1.0 of the CelebA frame.

    python -m benchmarks.detect_framing [--manifest manifests/v7/val.csv] > docs/detect_framing.txt

Every validation portrait of CelebA and UTKFace adults, placed on 250x250 as
benchmarks/detection.py does, and every MTFL validation face (its 128x160 frame at its own
size on 250x250) is detected once (SCRFD) and aligned at each fraction; balanced accuracy and
recall per sex, float and int8 graphs. The portraits are edge-padded, so the largest views of
UTKFace's tight crops see streaks: read fraction 1.0 with that in mind.
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np
from PIL import Image

from benchmarks.detection import placed
from facegender import manifest
from facegender.classifier import Classifier
from facegender.evaluate import benchmark_samples
from facegender.faces.detect import VIEWS, FaceDetector, align
from facegender.images import load_rgb
from facegender.metrics import classification_metrics

FRACTIONS = (0.6, 0.7, 0.8, 0.9, 1.0)


def portrait(row) -> Image.Image:
    if not row.source.startswith("mtfl"):
        return placed(row, (250, 250))
    a = np.asarray(load_rgb(row.path))
    top, left = (250 - a.shape[0]) // 2, (250 - a.shape[1]) // 2
    return Image.fromarray(np.pad(a, ((top, 250 - a.shape[0] - top), (left, 250 - a.shape[1] - left), (0, 0)), mode="edge"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default="manifests/v7/val.csv")
    a = ap.parse_args()
    groups = benchmark_samples(a.manifest, 10**9)
    groups["mtfl"] = [r for r in manifest.read(a.manifest) if r.source.startswith("mtfl")]
    print(f"shipped views (SCRFD): {VIEWS['scrfd']}; balanced accuracy (female / male recall)")
    for precision in ("float", "int8"):
        clf, det = Classifier(precision=precision, threads=1), FaceDetector(precision=precision)
        for group, people in groups.items():
            labels, views = [], {f: [] for f in FRACTIONS}
            for r in people:
                img = portrait(r)
                marks = det.detect(img)[2]
                if len(marks):
                    labels.append(r.label)
                    for f in FRACTIONS:
                        views[f].append(align(img, marks[0], clf.pre, f, det.template))
            y = np.array(labels)
            p = {f: clf.predict(np.stack(views[f]), flip=True)[:, 1] for f in FRACTIONS}
            print(f"\n{precision} {group}: {len(y)} found of {len(people)}")
            for combo in [(f,) for f in FRACTIONS] + list(itertools.combinations(FRACTIONS, 2)):
                m = classification_metrics(y, np.mean([p[f] for f in combo], axis=0))
                mark = "  <- shipped" if combo == VIEWS["scrfd"] else ""
                print(f"  {' + '.join(f'{f:.1f}' for f in combo):10} {m['balanced_accuracy']:.4f} "
                      f"({m['recall']['female']:.3f} / {m['recall']['male']:.3f}){mark}", flush=True)


if __name__ == "__main__":
    main()
