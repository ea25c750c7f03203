"""Faces in ordinary photos: detect (MTCNN), align to the training frame, cut the model input.

Alignment maps the five landmarks onto where they sit in CelebA's aligned 178x218 frame
(measured with this detector on the training data), so a detected face reaches the
classifier framed the way the classifier learned faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .mtcnn import MTCNN
from .preprocess import Preprocess, crop_box

FRAME_SIZE = (178, 218)  # CelebA aligned frame, pixels
# median MTCNN landmarks on CelebA aligned frames: left eye, right eye, nose, mouth left, mouth right
FRAME_LANDMARKS = np.array([[69.0, 112.0], [109.1, 112.0], [88.1, 136.3], [71.5, 152.7], [106.6, 152.5]])
DETECT_MAX_SIDE = 1024  # detection runs on a copy no larger than this (pixels); faces are cut from the original


@dataclass
class Face:
    box: np.ndarray  # x1, y1, x2, y2 in photo pixels
    landmarks: np.ndarray  # 5x2: eyes, nose, mouth corners
    score: float  # detector confidence
    pixels: np.ndarray  # aligned model input, uint8 HxWx3

    def describe(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "landmarks": np.round(self.landmarks, 1).tolist(),
                "detector_confidence": round(float(self.score), 4)}


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform (Umeyama) taking points src to dst."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align(img: Image.Image, landmarks: np.ndarray, pre: Preprocess, fraction: float) -> np.ndarray:
    """Warp the photo so the landmarks land on the frame's, cut the centre box: model input."""
    to_frame = np.vstack([similarity(landmarks, FRAME_LANDMARKS), [0, 0, 1]])
    left, top, right, bottom = crop_box(*FRAME_SIZE, pre.aspect, fraction)
    out_to_frame = np.array([[(right - left) / pre.width, 0, left], [0, (bottom - top) / pre.height, top], [0, 0, 1]])
    out_to_photo = np.linalg.inv(to_frame) @ out_to_frame @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    step = float(np.sqrt(abs(np.linalg.det(out_to_photo[:2, :2]))))  # photo pixels per output pixel
    factor = int(step // 2)
    if factor >= 2:  # shrink first (box filter) so the warp does not alias a large face
        img = img.reduce(factor)
        out_to_photo = np.diag([1 / factor, 1 / factor, 1]) @ out_to_photo
    m = out_to_photo
    coeffs = (m[0, 0], m[0, 1], m[0, 2] - 0.5, m[1, 0], m[1, 1], m[1, 2] - 0.5)
    return np.asarray(img.transform((pre.width, pre.height), Image.AFFINE, coeffs, Image.BILINEAR), np.uint8)


class FaceDetector:
    """Every face of a photo, largest first, aligned for the classifier."""

    def __init__(self, max_faces: int = 0, min_face: int = 40, fraction: float = 0.7, threads: int = 1):
        """min_face: smallest face searched for, in pixels of the photo scaled to <= 1024 px (40
        keeps 640x480 photos above 30/s; 32 finds smaller faces at 29/s). fraction: how much of
        the aligned CelebA frame the classifier sees (0.7 scored best of 0.6-1.0 on validation
        portraits). threads: ONNX Runtime threads per call (`process` runs a photo per core)."""
        self.mtcnn = MTCNN(min_face=min_face, threads=threads)
        self.max_faces, self.fraction = max_faces, fraction
        self._settings = (max_faces, min_face, fraction, threads)

    def __reduce__(self):  # ONNX Runtime sessions do not pickle: a worker process rebuilds them
        return FaceDetector, self._settings

    def detect(self, img: Image.Image):
        r = min(1.0, DETECT_MAX_SIDE / max(img.size))
        small = img if r == 1.0 else img.resize((round(img.width * r), round(img.height * r)), Image.BILINEAR)
        boxes, scores, marks = self.mtcnn.detect(small)
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        if self.max_faces:
            order = order[: self.max_faces]
        return boxes[order] / r, scores[order], marks[order] / r

    def faces(self, img: Image.Image, pre: Preprocess) -> list[Face]:
        boxes, scores, marks = self.detect(img)
        return [Face(b, m, s, align(img, m, pre, self.fraction)) for b, s, m in zip(boxes, scores, marks)]


def annotate(img: Image.Image, faces: list[dict]) -> Image.Image:
    """A copy of the photo with each face's box, landmarks and gender drawn."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(img.size) / 300))
    for f in faces:
        colour = (230, 60, 140) if f["gender"] == "female" else (40, 120, 230)
        x1, y1, x2, y2 = f["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        for x, y in f["landmarks"]:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour)
        label = f"{f['gender']} {f['probability']:.2f}"
        tx, ty = x1, max(0, y1 - 12 - width)
        draw.rectangle([tx, ty, tx + 7 * len(label), ty + 12], fill=colour)
        draw.text((tx + 2, ty), label, fill=(255, 255, 255))
    return out
