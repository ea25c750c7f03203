"""BlazeFace short-range (MediaPipe) against SCRFD on the detection benchmark's own photos.

Issue #17 named two candidate detectors; this measures the one not shipped. The model is
Google's `face_detection_short_range.tflite` (Apache-2.0) from the `mediapipe` 0.10.21 wheel
(1.x wheels no longer carry it), converted to ONNX in a TensorFlow venv of its own:

    pip download --no-deps mediapipe==0.10.21 -d /tmp/bf
    unzip -j /tmp/bf/mediapipe-0.10.21-*.whl 'mediapipe/modules/face_detection/face_detection_short_range.tflite' -d /tmp/bf
    .venv-tf/bin/python -m tf2onnx.convert --tflite /tmp/bf/face_detection_short_range.tflite \\
        --opset 17 --output /tmp/bf/blazeface.onnx
    python -m experiments.blazeface_probe /tmp/bf/blazeface.onnx

(The full-range model ships only as a sparse tflite, and tf2onnx 1.17 crashes on it.)
BlazeFace takes the whole photo letterboxed to 128x128 and gives boxes plus six keypoints
(eyes, nose tip, mouth centre, ears); faces are aligned from the first four onto their median
place on CelebA frames, measured by tools/convert_scrfd.py's frame_template as for SCRFD. Prints, per
photo set, found (the benchmark's rule: a box centre within a third of the face's width),
balanced accuracy and female recall over the faces found, and detector milliseconds per photo
on one thread (resize and normalisation included), for both detectors.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.detection import PER_SOURCE, build_sets
from facegender.classifier import Classifier
from facegender.evaluate import benchmark_samples
from facegender.faces.detect import FaceDetector, align
from facegender.faces.mtcnn import nms
from facegender.images import load_rgb
from facegender.metrics import classification_metrics
from tools.convert_scrfd import frame_template

ROOT = Path(__file__).resolve().parents[1]

SIDE = 128
VIEW = 0.7  # the one view of the aligned frame detect mode showed when this probe was run (detect.VIEWS now)


def anchors() -> np.ndarray:
    """MediaPipe's SSD anchors for the short-range model: 2 per cell at stride 8, 6 at stride 16."""
    out = []
    for stride, n in ((8, 2), (16, 6)):
        f = SIDE // stride
        ys, xs = np.mgrid[0:f, 0:f]
        centres = np.stack([(xs + 0.5) / f, (ys + 0.5) / f], -1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32) * SIDE


class BlazeFace:
    def __init__(self, path: str, score: float = 0.5, overlap: float = 0.3):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input_name, self.anchors = self.session.get_inputs()[0].name, anchors()
        self.score, self.overlap = score, overlap

    def detect(self, img: Image.Image):
        """(boxes Nx4, scores N, keypoints Nx6x2) in the image's pixels."""
        r = SIDE / max(img.size)
        w, h = max(1, round(img.width * r)), max(1, round(img.height * r))
        left, top = (SIDE - w) // 2, (SIDE - h) // 2
        pixels = np.full((SIDE, SIDE, 3), 127.5, np.float32)  # letterboxed, grey = 0 after scaling
        pixels[top:top + h, left:left + w] = np.asarray(img.resize((w, h), Image.BILINEAR), np.float32)
        reg, logits = self.session.run(None, {self.input_name: (pixels / 127.5 - 1)[None]})
        scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0], -50, 50)))
        keep = np.nonzero(scores >= self.score)[0]
        reg, a = reg[0, keep], self.anchors[keep]
        centre, size = reg[:, :2] + a, reg[:, 2:4]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
        marks = reg[:, 4:16].reshape(-1, 6, 2) + a[:, None]
        pick = nms(boxes, scores[keep], self.overlap) if len(keep) else np.zeros(0, int)
        offset = np.array([left, top])
        return (boxes[pick] - np.tile(offset, 2)) / r, scores[keep][pick], (marks[pick] - offset) / r


def measure(name: str, folder: Path, truth: dict, detect, cut, clf: Classifier) -> str:
    found, y, p, seconds = 0, [], [], 0.0
    for file, faces in truth.items():
        img = load_rgb(folder / file)
        t = time.perf_counter()
        boxes, marks = detect(img)
        seconds += time.perf_counter() - t
        for cx, cy, width, label in faces:
            near = [i for i, b in enumerate(boxes) if np.hypot((b[0] + b[2]) / 2 - cx, (b[1] + b[3]) / 2 - cy) < width / 3 + 4]
            if near:
                found += 1
                y.append(label)
                p.append(float(clf.predict(cut(img, marks[near[0]])[None])[0, 1]))
    m = classification_metrics(np.array(y), np.array(p))
    n = sum(len(v) for v in truth.values())
    return (f"{name:34} {found / n:7.4f} {m['balanced_accuracy']:8.4f} {m['recall']['female']:9.4f} "
            f"{seconds / len(truth) * 1000:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("onnx", help="face_detection_short_range converted to ONNX (see above)")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    a = ap.parse_args()
    clf, blaze, scrfd = Classifier(threads=1), BlazeFace(a.onnx), FaceDetector(threads=1)
    template = frame_template(blaze.detect)[:4]  # eyes, nose tip, mouth centre
    print("BlazeFace template (eyes, nose tip, mouth centre; CelebA frame pixels):", np.round(template, 1).tolist())
    print(f"{'photos / detector':34} {'found':>7} {'bal.acc':>8} {'F recall':>9} {'ms/photo':>8}")
    with tempfile.TemporaryDirectory(prefix="fg-blaze-") as tmp:
        sets = build_sets(benchmark_samples(a.manifest, PER_SOURCE), Path(tmp), 200, 0, 0)
        for name in ("portraits 250x250", "640x480"):
            folder, truth = sets[name]
            print(measure(f"{name}, SCRFD (shipped)", folder, truth, lambda img: scrfd.detect(img)[::2],
                          lambda img, m: align(img, m, clf.pre, VIEW, scrfd.template), clf))
            print(measure(f"{name}, BlazeFace short", folder, truth, lambda img: blaze.detect(img)[::2],
                          lambda img, m: align(img, m[:4], clf.pre, VIEW, template), clf))


if __name__ == "__main__":
    main()
