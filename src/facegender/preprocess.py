"""Geometry and normalisation shared by training and inference.

A face image is never squashed: a box with the model's aspect ratio is cut from its centre
(optionally tighter, `fraction` < 1) and resized to the model's input in one resampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_box(w: int, h: int, aspect: float, fraction: float = 1.0, shift=(0.0, 0.0),
             x_stretch: float = 1.0) -> tuple[float, float, float, float]:
    """The largest centred box of width/height `aspect` inside a w x h image, scaled by
    `fraction` and moved by `shift` (in box sizes), clamped to the image.

    `x_stretch` > 1 says the stored pixels are stretched horizontally (the true width is
    w / x_stretch, as in CelebA frames squeezed to squares); the box is cut in true
    proportions and mapped back.
    """
    true_w = w / x_stretch
    if true_w / h > aspect:
        bh = h * fraction
        bw = bh * aspect
    else:
        bw = true_w * fraction
        bh = bw / aspect
    cx = true_w / 2 + shift[0] * bw
    cy = h / 2 + shift[1] * bh
    left = min(max(cx - bw / 2, 0.0), max(true_w - bw, 0.0))
    top = min(max(cy - bh / 2, 0.0), max(h - bh, 0.0))
    bw, bh = min(bw, true_w), min(bh, h)
    s = x_stretch
    return (left * s, top, (left + bw) * s, top + bh)


@dataclass(frozen=True)
class Preprocess:
    """What a model needs its input to look like; stored in the ONNX metadata."""

    width: int = 80  # model input width, pixels
    height: int = 96  # model input height, pixels (faces are taller than wide)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def fit(self, img: Image.Image, fraction: float = 1.0, shift=(0.0, 0.0), x_stretch: float = 1.0) -> np.ndarray:
        """Cut the face box and resize it to the input size: uint8 HxWx3."""
        box = crop_box(img.width, img.height, self.aspect, fraction, shift, x_stretch)
        out = img.resize((self.width, self.height), Image.BILINEAR, box=box)
        return np.asarray(out, dtype=np.uint8)

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """uint8 NxHxWx3 -> float32 Nx3xHxW, ImageNet-style normalised. The bytes are put in
        channel order first, so the float passes run on contiguous planes (~6x faster than
        transposing the floats; the same float32 operations, so the same values bit for bit)."""
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).astype(np.float32)
        x *= np.float32(1 / 255)
        x -= np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)
        x /= np.asarray(self.std, np.float32).reshape(1, 3, 1, 1)
        return x
