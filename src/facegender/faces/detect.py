"""Faces in ordinary photos: detect (SCRFD, or MTCNN), align to the training frame, cut the model input.

Alignment maps the five landmarks onto where they sit in CelebA's aligned 178x218 frame,
measured with each detector on the training data (detectors place landmarks slightly
differently), so a detected face reaches the classifier framed the way it learned faces.
Big photos are decoded twice at most, each time only as large as needed: once for the
detector's input, once more (only when a face would be too small there) for the faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..images import load_scaled
from ..preprocess import Preprocess, crop_box

FRAME_SIZE = (178, 218)  # CelebA aligned frame, pixels
# median landmarks on CelebA aligned frames: left eye, right eye, nose, mouth left, mouth right
TEMPLATES = {
    "mtcnn": np.array([[69.0, 112.0], [109.1, 112.0], [88.1, 136.3], [71.5, 152.7], [106.6, 152.5]]),
    # tools/convert_scrfd.py --template
    "scrfd": np.array([[69.5, 112.1], [108.5, 111.9], [88.6, 136.2], [72.6, 152.6], [105.2, 152.4]]),
}
FRAME_LANDMARKS = TEMPLATES["mtcnn"]
DETECTORS = ("scrfd", "mtcnn")
DETECT_MAX_SIDE = 1024  # MTCNN runs on a copy no larger than this (pixels); faces are cut from the original
MIN_FACE = {"scrfd": 24, "mtcnn": 40}  # default smallest face searched for (see FaceDetector)
# How much of the aligned CelebA frame the classifier sees of a detected face: two views, their
# answers averaged. On every validation portrait (`python -m benchmarks.detect_framing`,
# docs/detect_framing.txt; stage 7, float / int8) the single 0.7 view of before scored
# balanced CelebA 0.9733 / 0.9727, UTKFace adults 0.9592 / 0.9577, MTFL 0.9257 / 0.9286;
# 0.6 + 0.8 scored 0.9750 / 0.9748, 0.9744 / 0.9679, 0.9307 / 0.9303, the only pair better
# in all six. One view alone is fragile on short-haired women: test_detect's astronaut reads
# 0.975 at 0.6, 0.93 at 0.7, 0.25 at 0.75, 0.63 at 0.8. Measured with SCRFD's landmarks;
# MTCNN (its own template) keeps the one view it was tuned with.
VIEWS = {"scrfd": (0.6, 0.8), "mtcnn": (0.7,)}
SCRFD_MAX_SIDE = 640  # longest side of SCRFD's input: a 12-megapixel photo costs what a 640x480 one does
FINER = 2.0  # SCRFD: a photo with no face found is searched once more at this many times the scale, where the cap
# allows. It found 4 of the 6 portraits missed among 1,400 (all missed outright) at 256 px; a face-free photo
# pays for it (250x250 5 -> 27 ms, 640x480 26 -> 108 ms on one core); 1280 px and over are at the cap: no second pass
SHARP_STEP = 0.7  # decoded pixels per model-input pixel below which a face is cut from a sharper decode. At 0.7 a
# 250x250 portrait is decoded once, at 125x125 (its face upsampled ~1.3x): on 1,400 validation portraits balanced
# accuracy 0.9635 vs 0.9629 at 1.0 (11 changed side), process --detect 190 vs 169 photos/s; 2.0 re-decoded
# 12 MP photos for nothing


@dataclass
class Face:
    box: np.ndarray  # x1, y1, x2, y2 in photo pixels
    landmarks: np.ndarray  # 5x2: eyes, nose, mouth corners
    score: float  # detector confidence
    pixels: np.ndarray  # aligned model inputs, one per view (VIEWS): uint8 V x H x W x 3

    def describe(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "landmarks": np.round(self.landmarks, 1).tolist(),
                "detector_confidence": round(float(self.score), 4)}


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform taking points src to dst (Umeyama's, in closed
    form: with points as complex numbers it is the z minimising |z*s - d|, ~15x faster than an SVD)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    a = (s * d).sum() / (s * s).sum()  # scale * cos
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / (s * s).sum()  # scale * sin
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def _output_to_photo(landmarks: np.ndarray, pre: Preprocess, fraction: float, template: np.ndarray) -> np.ndarray:
    """3x3 map from model-input pixel centres to photo coordinates for a face's landmarks."""
    to_frame = np.vstack([similarity(landmarks, template), [0, 0, 1]])
    left, top, right, bottom = crop_box(*FRAME_SIZE, pre.aspect, fraction)
    out_to_frame = np.array([[(right - left) / pre.width, 0, left], [0, (bottom - top) / pre.height, top], [0, 0, 1]])
    return np.linalg.inv(to_frame) @ out_to_frame @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])


def photo_step(landmarks: np.ndarray, pre: Preprocess, fraction: float, template: np.ndarray = FRAME_LANDMARKS) -> float:
    """Photo pixels per model-input pixel for this face: under 1, the face is upsampled."""
    return float(np.sqrt(abs(np.linalg.det(_output_to_photo(landmarks, pre, fraction, template)[:2, :2]))))


def align(img: Image.Image, landmarks: np.ndarray, pre: Preprocess, fraction: float,
          template: np.ndarray = FRAME_LANDMARKS) -> np.ndarray:
    """Warp the photo so the landmarks land on the frame's, cut the centre box: model input."""
    out_to_photo = _output_to_photo(landmarks, pre, fraction, template)
    step = float(np.sqrt(abs(np.linalg.det(out_to_photo[:2, :2]))))  # photo pixels per output pixel
    factor = int(step // 2)
    if factor >= 2:  # shrink first (box filter) so the warp does not alias a large face
        img = img.reduce(factor)
        out_to_photo = np.diag([1 / factor, 1 / factor, 1]) @ out_to_photo
    m = out_to_photo
    coeffs = (m[0, 0], m[0, 1], m[0, 2] - 0.5, m[1, 0], m[1, 1], m[1, 2] - 0.5)
    return np.asarray(img.transform((pre.width, pre.height), Image.AFFINE, coeffs, Image.BILINEAR), np.uint8)


def prominence(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """How much each face is the one the photo is of: its area x (1 - d)^2, d being the
    distance of its centre from the photo's centre over half the diagonal. A face in the
    middle outranks a larger one at the edge (on news photos the largest face alone picked a
    bystander in 52 of 3,000: balanced accuracy 95.2 -> 96.6 by centrality); a small face in
    the middle does not outrank one four times its size a little off centre."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2 - width / 2, (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2], 1)
    d = np.minimum(1.0, np.hypot(*centre.T) / (np.hypot(width, height) / 2))
    return area * (1 - d) ** 2


class FaceDetector:
    """Every face of a photo, the most prominent first (`prominence`), aligned for the classifier."""

    def __init__(self, max_faces: int = 0, min_face: float | None = None, views: tuple = None, threads: int = 1,
                 detector: str = "scrfd", max_side: int | None = None, precision: str = "auto"):
        """detector: "scrfd" (default: faster and finds more) or "mtcnn". min_face: smallest
        face searched for, in pixels; SCRFD: of the photo (the photo is scaled so such a face
        is 12 px at the network's input, never over max_side: in a 4000x3000 photo the
        smallest face found is then ~80 px); MTCNN: of the photo scaled to <= 1024 px.
        views: the fractions of the aligned CelebA frame the classifier sees each face at; its
        answers are averaged (default: the detector's VIEWS). threads: ONNX Runtime threads per call
        (`process` runs a photo per core). precision: SCRFD's graph, by the classifier's rule
        (auto: int8 where the CPU has VNNI); MTCNN is float only."""
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}: choose from {', '.join(DETECTORS)}")
        self.name = detector
        self.min_face = float(min_face or MIN_FACE[detector])
        self.max_side, self.template = max_side or SCRFD_MAX_SIDE, TEMPLATES[detector]
        if detector == "scrfd":
            from .scrfd import SCRFD
            self.net = SCRFD(threads=threads, precision=precision)
        else:
            from .mtcnn import MTCNN
            self.net = MTCNN(min_face=self.min_face, threads=threads)
        self.max_faces, self.views = max_faces, tuple(views or VIEWS[detector])
        self._settings = (max_faces, min_face, views, threads, detector, max_side, precision)

    @property
    def loaded(self) -> str:
        """The detector's graph file and why that one (SCRFD: float or int8; MTCNN: float)."""
        if self.name == "scrfd":
            return f"{self.net.path.name} ({self.net.chosen_because})"
        return "mtcnn-pnet/rnet/onet.onnx (float only)"

    def __reduce__(self):  # ONNX Runtime sessions do not pickle: a worker process rebuilds them
        return FaceDetector, self._settings

    def limited(self, max_faces: int) -> "FaceDetector":
        """The same detector (the same ONNX sessions) keeping only the `max_faces` most prominent faces."""
        view = object.__new__(FaceDetector)
        view.__dict__.update(self.__dict__, max_faces=max_faces, _settings=(max_faces, *self._settings[1:]))
        return view

    def detector_side(self, width: int, height: int, min_face: float | None = None) -> int:
        """Longest side the detector needs of a width x height photo (pixels)."""
        if self.name == "mtcnn":
            return min(max(width, height), DETECT_MAX_SIDE)
        from .scrfd import input_size
        r = input_size(width, height, min_face or self.min_face, self.max_side)[0]
        return max(1, round(max(width, height) * r))

    def detect(self, img: Image.Image, min_face: float | None = None):
        """(boxes Nx4, scores N, landmarks Nx5x2) in the image's pixels, most prominent face first.
        min_face (SCRFD): in `img`'s pixels, so a draft decode is not reduced by it a second
        time; default the detector's own, for an image at the photo's size."""
        if self.name == "scrfd":
            boxes, scores, marks = self.net.detect(img, min_face or self.min_face, self.max_side)
        else:
            r = min(1.0, DETECT_MAX_SIDE / max(img.size))
            small = img if r == 1.0 else img.resize((round(img.width * r), round(img.height * r)), Image.BILINEAR)
            boxes, scores, marks = self.net.detect(small)
            boxes, marks = boxes / r, marks / r
        order = np.argsort(-prominence(boxes, *img.size), kind="stable")
        if self.max_faces:
            order = order[: self.max_faces]
        return boxes[order], scores[order], marks[order]

    def _cut(self, img: Image.Image, boxes, scores, marks, pre: Preprocess, scale: float = 1.0) -> list[Face]:
        return [Face(b * scale, m * scale, s, np.stack([align(img, m, pre, v, self.template) for v in self.views]))
                for b, s, m in zip(boxes, scores, marks)]

    def find(self, source, pre: Preprocess) -> tuple[list[Face], Image.Image]:
        """Decode `source` (path, bytes, image, array) only as large as detection needs, then,
        if a face would be cut from too few pixels there, once more just large enough for it.
        A photo where SCRFD finds no face is searched a second time at FINER times the scale,
        from a larger decode only when the first was reduced (a JPEG's draft decode). So a
        photo is decoded once, or twice (a second, sharper JPEG decode for its faces, or a
        finer search); three times only for a JPEG whose faces the finer search found small.
        Boxes and landmarks are in the full photo's pixels; the image returned is the one
        the faces were cut from, with `info["photo_scale"]` = full-photo pixels per its pixel."""
        img, scale = load_scaled(source, lambda w, h: (self.detector_side(w, h),) * 2)
        boxes, scores, marks = self.detect(img, self.min_face / scale)
        if not len(boxes) and self.name == "scrfd":  # nothing found: once more, finer (FINER), if the cap allows
            width, height = round(img.width * scale), round(img.height * scale)
            side = self.detector_side(width, height, self.min_face / FINER)
            if side > self.detector_side(width, height):
                if scale > 1:  # a reduced (JPEG draft) decode: decode again, larger; else the pixels are all here
                    img, scale = load_scaled(source, (side, side))
                boxes, scores, marks = self.detect(img, self.min_face / FINER / scale)
        if len(boxes) and scale > 1:
            step = min(photo_step(m, pre, min(self.views), self.template) for m in marks) * scale  # full-photo pixels
            if step / scale < SHARP_STEP:
                full = scale * max(img.size)
                sharp, sharp_scale = load_scaled(source, (max(1, round(full / max(1.0, step / SHARP_STEP))),) * 2)
                if sharp_scale < scale:
                    marks = marks * (scale / sharp_scale)
                    boxes = boxes * (scale / sharp_scale)
                    img, scale = sharp, sharp_scale
        img.info["photo_scale"] = scale
        return self._cut(img, boxes, scores, marks, pre, scale), img


def annotate(img: Image.Image, faces: list) -> Image.Image:
    """A copy of the photo with each face's box, landmarks and gender drawn."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(img.size) / 300))
    k = 1 / img.info.get("photo_scale", 1.0)  # boxes are in full-photo pixels; img may be a reduced decode
    for f in faces:  # record.FaceAnswer
        colour = (230, 60, 140) if f.gender == "female" else (40, 120, 230)
        x1, y1, x2, y2 = (v * k for v in f.box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        for x, y in np.asarray(f.landmarks) * k:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=colour)
        label = f"{f.gender} {f.probability:.2f}"
        tx, ty = x1, max(0, y1 - 12 - width)
        draw.rectangle([tx, ty, tx + 7 * len(label), ty + 12], fill=colour)
        draw.text((tx + 2, ty), label, fill=(255, 255, 255))
    return out
