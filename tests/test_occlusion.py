"""Covers drawn on faces (occlusion.py): each covers its own part of the face, and
`evaluate --occlude` draws the same views for every model."""
import random

import numpy as np
import pytest
from PIL import Image

from facegender import occlusion
from facegender.evaluate import evaluate
from facegender.images import load_rgb
from facegender.manifest import Row
from facegender.preprocess import crop_box

from .conftest import SAMPLE, real_images


@pytest.fixture(scope="module")
def face():
    path = real_images("celeba-112x137", "female", 1)[0]
    return load_rgb(path), Row(str(path), 1, source="celeba-112x137", min_crop=0.55)


def bands(img: Image.Image) -> dict:
    """Rows of the face box around the brow/hair, the eyes and the mouth (CelebA frame)."""
    left, top, right, bottom = crop_box(img.width, img.height, 0.82, 0.55)
    h = bottom - top
    cols = slice(round(left + 0.25 * (right - left)), round(right - 0.25 * (right - left)))
    at = lambda y0, y1: (slice(round(top + y0 * h), round(top + y1 * h)), cols)
    return {"top": at(0.0, 0.2), "eyes": at(0.48, 0.56), "mouth": at(0.82, 0.92)}


@pytest.mark.parametrize("kind, covered", [("sunglasses", "eyes"), ("cap", "top"), ("mask", "mouth")])
def test_each_cover_changes_its_part_of_the_face_only(face, kind, covered):
    img, row = face
    a = np.asarray(img, float)
    b = np.asarray(occlusion.occlude(img, row, kind, random.Random(0)), float)
    change = {part: np.abs(a[box] - b[box]).mean() for part, box in bands(img).items()}
    assert change[covered] > 20, change
    assert all(v < 1 for part, v in change.items() if part != covered), change


def test_hiding_surroundings_changes_hair_and_background_not_the_face(face):
    img, row = face
    a = np.asarray(img, float)
    b = np.asarray(occlusion.hide_surroundings(img, row, random.Random(0)), float)
    h, w = a.shape[:2]
    centre = (slice(h * 2 // 5, h * 3 // 5), slice(w * 2 // 5, w * 3 // 5))
    corner = (slice(0, h // 8), slice(0, w // 8))
    assert np.abs(a[centre] - b[centre]).mean() < 2
    flat = np.asarray(Image.fromarray(b[corner].astype(np.uint8)).convert("L")).std() < 3
    assert np.abs(a[corner] - b[corner]).mean() > 5 or flat


def test_evaluate_occlude_draws_the_same_views_every_time_and_they_change_the_answers():
    plain = evaluate(str(SAMPLE), limit=120)
    masked = [evaluate(str(SAMPLE), limit=120, occlude="sunglasses") for _ in range(2)]
    assert np.array_equal(masked[0]["_p"], masked[1]["_p"])  # seeded by path: the same drawing for any model
    assert not np.allclose(plain["_p"], masked[0]["_p"], atol=1e-3)
    assert masked[0]["occlude"] == "sunglasses" and plain["occlude"] is None
