"""Detect mode on portrait photos: how many faces are found, how well they are classified, how fast.

    python benchmarks/detection.py [--per-source 600]

No labelled in-the-wild photos are at hand, so portraits are built from validation images
of ../shared/data the way celebrity benchmarks look (LFW: a 250x250 photo, the face in the
centre, eyes ~40 px apart, background around): a CelebA aligned frame at 178x218 or a UTKFace
crop scaled to the same eye distance, its border pixels extended to 250x250. Speed is timed
on 640x480 photos (one face) built the same way. Also shown: the crop path (no detection) on
the same portraits, the baseline that detection has to beat.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facegender import manifest  # noqa: E402
from facegender.classifier import Classifier  # noqa: E402
from facegender.detect import FaceDetector  # noqa: E402
from facegender.images import load_rgb  # noqa: E402
from facegender.evaluate import benchmark_samples  # noqa: E402
from facegender.metrics import classification_metrics  # noqa: E402
from facegender.pipeline import ProcessOptions, process_folder  # noqa: E402


def portrait(row: manifest.Row, size=(250, 250)) -> Image.Image:
    img = load_rgb(row.path)
    if row.source.startswith("celeba"):
        img = img.resize((178, 218), Image.BILINEAR)  # undoes the 64x64 squeeze too
    else:  # UTKFace: eyes ~80 px apart in 200 px; CelebA frames have ~40
        img = img.resize((img.width // 2, img.height // 2), Image.BILINEAR)
    a = np.asarray(img)
    top, left = (size[1] - a.shape[0]) // 2, (size[0] - a.shape[1]) // 2
    a = np.pad(a, ((top, size[1] - a.shape[0] - top), (left, size[0] - a.shape[1] - left), (0, 0)), mode="edge")
    return Image.fromarray(a)


def central_face(faces, size):
    cx, cy = size[0] / 2, size[1] / 2
    near = [f for f in faces if abs((f.box[0] + f.box[2]) / 2 - cx) < 40 and abs((f.box[1] + f.box[3]) / 2 - cy) < 50]
    return near[0] if near else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--per-source", type=int, default=600, help="portraits per source (CelebA, UTKFace adults)")
    ap.add_argument("--speed-photos", type=int, default=100)
    ap.add_argument("--model")
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()

    samples = benchmark_samples(a.manifest, a.per_source)
    clf, det = Classifier(a.model), FaceDetector()
    report = {}
    for name, sample in samples.items():
        y, p_det, p_crop, found = [], [], [], 0
        for r in sample:
            photo = portrait(r)
            face = central_face(det.faces(photo, clf.pre), photo.size)
            p_crop.append(clf.predict(clf.pre.fit(photo)[None])[0, 1])
            y.append(r.label)
            if face is not None:
                found += 1
                p_det.append(clf.predict(face.pixels[None], flip=True)[0, 1])  # as `process --detect` does
            else:
                p_det.append(np.nan)
        y, p_det, p_crop = np.array(y), np.array(p_det), np.array(p_crop)
        ok = ~np.isnan(p_det)
        m_det, m_crop = classification_metrics(y[ok], p_det[ok]), classification_metrics(y, p_crop)
        report[name] = {"photos": len(sample), "detection_rate": found / len(sample),
                        "detect_accuracy": m_det["accuracy"], "detect_balanced_accuracy": m_det["balanced_accuracy"],
                        "crop_accuracy": m_crop["accuracy"], "crop_balanced_accuracy": m_crop["balanced_accuracy"]}

    speed_rows = benchmark_samples(a.manifest, a.speed_photos, seed=1)["celeba"]
    photos = [portrait(r, (640, 480)) for r in speed_rows]
    det.faces(photos[0], clf.pre)
    t = time.perf_counter()
    for photo in photos:
        faces = det.faces(photo, clf.pre)
        if faces:
            clf.predict(np.stack([f.pixels for f in faces]), flip=True)
    rate = len(photos) / (time.perf_counter() - t)
    report["speed_640x480_photos_per_s_one_thread"] = rate
    with tempfile.TemporaryDirectory() as tmp:  # the real path: `process --detect`, a photo per core
        for i, photo in enumerate(photos):
            photo.save(Path(tmp) / f"{i:04d}.jpg", quality=90)
        t = time.perf_counter()
        process_folder(tmp, ProcessOptions(output=str(Path(tmp) / "r.json"), detector=det, progress=False), clf)
        report["speed_640x480_photos_per_s"] = len(photos) / (time.perf_counter() - t)

    print(f"{'portraits 250x250':16} {'photos':>7} {'found':>7} {'acc (detect)':>13} {'bal. acc':>9} {'acc (no detect)':>16} {'bal. acc':>9}")
    for name in samples:
        r = report[name]
        print(f"{name:16} {r['photos']:>7} {r['detection_rate']:>7.4f} {r['detect_accuracy']:>13.4f} {r['detect_balanced_accuracy']:>9.4f} "
              f"{r['crop_accuracy']:>16.4f} {r['crop_balanced_accuracy']:>9.4f}")
    print(f"detect + align + classify, 640x480 JPEG photos: {report['speed_640x480_photos_per_s']:.1f} photos/s with "
          f"`process --detect` (decode included, all cores), {rate:.1f} photos/s in one thread (decoded)")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
