"""Detect mode on real photos that registry packages ship (read from the installed package)."""
import io
import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from PIL import Image

import facegender.api as fg
from facegender.detect import FaceDetector

from .conftest import ROOT


def shipped(package: str, relative: str) -> Path:
    spec = find_spec(package)  # locates the package without importing it (its own deps may be absent)
    if spec is None:
        pytest.skip(f"{package} is not installed (.ci/run installs it with --no-deps for its sample photos)")
    return Path(list(spec.submodule_search_locations)[0]) / relative


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    Image.open(shipped("insightface", "data/images/t1.jpg")).save(d / "group.jpg")  # six people
    Image.open(shipped("skimage", "data/coffee.png")).convert("RGB").save(d / "coffee.jpg")  # a cup, no one
    astronaut = Image.open(shipped("skimage", "data/astronaut.png")).convert("RGB")  # Eileen Collins
    astronaut.save(d / "astronaut.jpg")
    stored = astronaut.transpose(Image.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(d / "astronaut_rotated.jpg", exif=exif)
    return d


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(photos), "--detect", "--details", "d.json",
                        "--annotate", "annotated", "-q"], cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out, json.loads((out / "process_results.json").read_text()), json.loads((out / "d.json").read_text())


def test_group_photo_lists_every_face(run):
    _, results, details = run
    faces = details["files"]["group.jpg"]["faces"]
    assert len(faces) == 6
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
    assert areas == sorted(areas, reverse=True)  # largest first
    for f in faces:
        assert len(f["landmarks"]) == 5 and f["detector_confidence"] > 0.9
        assert f["gender"] in ("male", "female") and 0.5 <= f["probability"] <= 1
    assert results["group.jpg"] == faces[0]["gender"]


def test_photo_without_a_face_says_so(run):
    _, results, details = run
    assert results["coffee.jpg"] is None
    assert details["files"]["coffee.jpg"] == {"faces": [], "reason": "no face found"}
    assert details["summary"]["no_face"] == 1


def test_portrait_is_found_and_classified(run):
    _, results, details = run
    assert len(details["files"]["astronaut.jpg"]["faces"]) == 1
    assert results["astronaut.jpg"] == "female"


def test_exif_rotated_photo_gives_the_same_face(run):
    _, results, details = run
    upright, rotated = details["files"]["astronaut.jpg"]["faces"], details["files"]["astronaut_rotated.jpg"]["faces"]
    assert len(rotated) == 1 and results["astronaut_rotated.jpg"] == results["astronaut.jpg"]
    assert all(abs(a - b) < 4 for a, b in zip(upright[0]["box"], rotated[0]["box"]))


def test_annotated_copies_are_written(run):
    out, _, _ = run
    for name in ("group.jpg", "coffee.jpg", "astronaut.jpg", "astronaut_rotated.jpg"):
        img = Image.open(out / "annotated" / f"{name}.annotated.jpg")
        assert img.size[0] > 100


def test_max_faces_keeps_the_largest(photos):
    everything = fg.predict(photos / "group.jpg", detector=FaceDetector())["faces"]
    two = fg.predict(photos / "group.jpg", detector=FaceDetector(max_faces=2))["faces"]
    assert [f["box"] for f in two] == [f["box"] for f in everything[:2]]


def test_python_api_takes_every_kind_of_input(photos):
    path = photos / "astronaut.jpg"
    img = Image.open(path)
    det = FaceDetector()
    import numpy as np
    answers = [fg.predict(x, detector=det) for x in (path, path.read_bytes(), img, np.asarray(img))]
    assert all(a == answers[0] for a in answers) and len(answers[0]["faces"]) == 1
    buf = io.BytesIO()
    Image.open(photos / "coffee.jpg").save(buf, "PNG")
    assert fg.predict(buf.getvalue(), detector=det) == {"faces": [], "reason": "no face found"}
