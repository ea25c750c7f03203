"""MTCNN face detection (Zhang et al. 2016) on ONNX Runtime and numpy.

The three networks are facenet-pytorch's weights converted by tools/convert_mtcnn.py; the
cascade below follows facenet-pytorch's detect_face (same scales, thresholds, box maths).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .. import runtime

WEIGHTS = Path(__file__).parents[1] / "weights"


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if method == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=int)


def square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, :2] + side[:, None]
    return out


def regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] = boxes[:, :4] + reg * np.stack([w, h, w, h], axis=1)
    return out


def _normalise(a: np.ndarray) -> np.ndarray:
    return ((a.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2)


class MTCNN:
    """`detect(img) -> (boxes Nx4, scores N, landmarks Nx5x2)` in the image's pixel coordinates."""

    def __init__(self, min_face: float, thresholds=(0.6, 0.7, 0.8), factor: float = 0.709, threads: int = 0):
        self.nets = {name: runtime.session(WEIGHTS / f"mtcnn-{name}.onnx", threads, required=True)
                     for name in ("pnet", "rnet", "onet")}
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor

    def _run(self, name, batch):
        return self.nets[name].run(None, {"image": batch})

    def _crops(self, img: Image.Image, boxes: np.ndarray, size: int) -> np.ndarray:
        out = np.empty((len(boxes), size, size, 3), np.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(int)):  # crop outside the image reads black
            out[k] = np.asarray(img.resize((size, size), Image.BILINEAR, box=(x1 - 1, y1 - 1, x2, y2))
                                if x1 >= 1 and y1 >= 1 and x2 <= img.width and y2 <= img.height
                                else img.crop((x1 - 1, y1 - 1, x2, y2)).resize((size, size), Image.BILINEAR))
        return out

    def detect(self, img: Image.Image):
        w, h = img.size
        scale = 12.0 / self.min_face
        side = min(w, h) * scale
        candidates = []
        while side >= 12:  # stage 1: P-Net over the image pyramid
            sw, sh = int(w * scale + 1), int(h * scale + 1)
            level = np.asarray(img.resize((sw, sh), Image.BILINEAR))[None]
            reg, prob = self._run("pnet", _normalise(level))
            ys, xs = np.nonzero(prob[0, 1] >= self.thresholds[0])
            if len(ys):
                score = prob[0, 1, ys, xs]
                q1 = np.floor((2 * np.stack([xs, ys], 1) + 1) / scale)
                q2 = np.floor((2 * np.stack([xs, ys], 1) + 12) / scale)
                boxes = np.concatenate([q1, q2, score[:, None], reg[0][:, ys, xs].T], axis=1)
                candidates.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
            scale *= self.factor
            side *= self.factor
        empty = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
        if not candidates:
            return empty
        boxes = np.concatenate(candidates)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes = square(np.concatenate([regress(boxes[:, :4], boxes[:, 5:9]), boxes[:, 4:5]], axis=1))

        reg, prob = self._run("rnet", _normalise(self._crops(img, np.trunc(boxes), 24)))  # stage 2
        keep = prob[:, 1] > self.thresholds[1]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg = reg[keep]
        if not len(boxes):
            return empty
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = square(regress(boxes[pick], reg[pick]))

        boxes = np.trunc(boxes)  # stage 3: O-Net, with landmarks
        reg, marks, prob = self._run("onet", _normalise(self._crops(img, boxes, 48)))
        keep = prob[:, 1] > self.thresholds[2]
        boxes, reg, marks, score = boxes[keep], reg[keep], marks[keep], prob[keep, 1]
        if not len(boxes):
            return empty
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack([bw[:, None] * marks[:, :5] + boxes[:, 0:1] - 1,
                           bh[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = regress(np.concatenate([boxes[:, :4], score[:, None]], axis=1), reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        return boxes[pick, :4], boxes[pick, 4], points[pick]
