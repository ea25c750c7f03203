"""Things that cover part of a face: sunglasses, a cap, a mask, or everything but the face.

The hidden evaluation's errors are women read as men when the cues CelebA rewards are
gone: hair tied back or under a cap, eyes behind sunglasses, no make-up. Training draws
these views (`train --occlude`, `--hide`) so the model reads the face itself, and
`evaluate --occlude KIND` draws them the same way, seeded per image, to measure how much a
model leans on what they cover.

Positions come from the source's tightest crop (`row.min_crop`): on CelebA's aligned frame
that box has the eyes at 52% of its height, 30% and 70% across, the mouth at 87%; UTKFace
and SCUT-FBP5500 faces sit 7% of it higher (measured on a montage of each source).
"""
from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter

from .manifest import Row
from .preprocess import crop_box

KINDS = ("sunglasses", "cap", "mask", "hidden")
EYE_Y, EYE_X = 0.52, (0.30, 0.70)  # in the tightest crop's box
SOURCE_EYE_Y = {"utkface": 0.45, "scut-fbp5500": 0.45}  # sources whose faces sit higher in that box


def face_box(img: Image.Image, row: Row, rng: random.Random) -> tuple[float, float, float, float]:
    """The tightest crop's box, moved so the eyes sit at EYE_Y of it, jittered a little."""
    dy = SOURCE_EYE_Y.get(row.source, EYE_Y) - EYE_Y
    return crop_box(img.width, img.height, 0.82, row.min_crop * rng.uniform(0.95, 1.05),
                    shift=(rng.uniform(-0.03, 0.03), dy + rng.uniform(-0.03, 0.03)), x_stretch=row.x_stretch)


def _colour(rng: random.Random, dark: bool = False) -> tuple[int, int, int]:
    if dark:
        v = rng.randint(0, 60)
        return (v + rng.randint(0, 20), v + rng.randint(0, 20), v + rng.randint(0, 20))
    return tuple(rng.randint(0, 255) for _ in range(3))


def hide_surroundings(img: Image.Image, row: Row, rng: random.Random = random) -> Image.Image:
    """Blur or flatten what lies outside the face: hair, ears, background, clothes. The face
    is the ellipse inside the source's tightest crop, a little enlarged, with a soft edge."""
    left, top, right, bottom = crop_box(img.width, img.height, 0.82, row.min_crop * rng.uniform(1.0, 1.2),
                                        x_stretch=row.x_stretch)
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse([left, top, right, bottom], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, 0.04 * img.width)))
    if rng.random() < 0.5:
        outside = img.filter(ImageFilter.GaussianBlur(0.08 * img.width))
    else:
        outside = Image.new("RGB", img.size, _colour(rng))
    return Image.composite(img, outside, mask)


def sunglasses(img: Image.Image, row: Row, rng: random.Random = random) -> Image.Image:
    left, top, right, bottom = face_box(img, row, rng)
    w, h = right - left, bottom - top
    out = img.copy()
    draw = ImageDraw.Draw(out)
    colour, ey = _colour(rng, dark=True), top + EYE_Y * h
    lw, lh = w * rng.uniform(0.26, 0.34), h * rng.uniform(0.12, 0.18)
    for fx in EYE_X:
        cx = left + fx * w
        draw.rounded_rectangle([cx - lw / 2, ey - lh / 2, cx + lw / 2, ey + lh / 2], radius=lh * 0.4, fill=colour)
    draw.line([left + EYE_X[0] * w + lw / 2, ey - lh / 4, left + EYE_X[1] * w - lw / 2, ey - lh / 4],
              fill=colour, width=max(1, round(lh / 6)))
    return out


def cap(img: Image.Image, row: Row, rng: random.Random = random) -> Image.Image:
    """A cap or hat: everything above the brow covered, with a brim."""
    left, top, right, bottom = face_box(img, row, rng)
    w, h = right - left, bottom - top
    brim = top + h * rng.uniform(0.28, 0.38)
    out = img.copy()
    draw = ImageDraw.Draw(out)
    colour = _colour(rng)
    spread = w * rng.uniform(0.1, 0.3)
    draw.rectangle([left - spread, 0, right + spread, brim], fill=colour)
    if rng.random() < 0.6:  # a peak reaching forward
        draw.ellipse([left - spread / 2, brim - h * 0.06, right + spread / 2, brim + h * 0.06], fill=colour)
    return out


def face_mask(img: Image.Image, row: Row, rng: random.Random = random) -> Image.Image:
    """A medical mask or scarf over the nose, mouth and chin."""
    left, top, right, bottom = face_box(img, row, rng)
    w, h = right - left, bottom - top
    out = img.copy()
    colour = rng.choice([(235, 240, 245), (120, 170, 220), (30, 30, 35), _colour(rng)])
    ImageDraw.Draw(out).rounded_rectangle(
        [left + w * 0.05, top + h * rng.uniform(0.64, 0.72), right - w * 0.05, bottom + h * 0.1], radius=w * 0.15, fill=colour)
    return out


COVER = {"sunglasses": sunglasses, "cap": cap, "mask": face_mask, "hidden": hide_surroundings}


def occlude(img: Image.Image, row: Row, kind: str | None = None, rng: random.Random = random) -> Image.Image:
    """The face with one thing over it: `kind`, or one of sunglasses, cap and mask at random."""
    return COVER[kind or rng.choice(KINDS[:3])](img, row, rng)
