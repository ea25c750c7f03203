"""Detect mode on real photos that registry packages ship (read from the installed package):
SCRFD (the default) and MTCNN (`--detector mtcnn`) through `process`, big photos, the API."""
import io
import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import facegender.api as fg
from facegender.classifier import Classifier
from facegender.faces.detect import FaceDetector, align, prominence
from facegender.faces.scrfd import input_size

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


def _process(photos, out, *extra):
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(photos), "--detect", "--details", "d.json",
                        "--annotate", "annotated", "-q", *extra], cwd=out, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out, json.loads((out / "process_results.json").read_text()), json.loads((out / "d.json").read_text())


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory):
    return _process(photos, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def run_mtcnn(photos, tmp_path_factory):
    return _process(photos, tmp_path_factory.mktemp("out-mtcnn"), "--detector", "mtcnn")


@pytest.mark.parametrize("which, sure", [("run", 0.7), ("run_mtcnn", 0.9)])  # SCRFD's scores run lower
def test_group_photo_lists_every_face(which, sure, request):
    _, results, details = request.getfixturevalue(which)
    faces = details["files"]["group.jpg"]["faces"]
    assert len(faces) == 6
    w, h = Image.open(request.getfixturevalue("photos") / "group.jpg").size
    ranks = prominence(np.array([f["box"] for f in faces]), w, h)
    assert list(ranks) == sorted(ranks, reverse=True)  # the most prominent first
    for f in faces:
        assert len(f["landmarks"]) == 5 and f["detector_confidence"] > sure
        assert f["gender"] in ("male", "female") and 0.5 <= f["probability"] <= 1
    assert results["group.jpg"] == faces[0]["gender"]


def test_photo_without_a_face_says_so(run):
    _, results, details = run
    assert results["coffee.jpg"] is None
    assert details["files"]["coffee.jpg"] == {"faces": [], "reason": "no face found"}
    assert details["summary"]["no_face"] == 1


def test_portrait_is_found_and_classified(run, run_mtcnn):
    """Eileen Collins, short hair: stage 3 read her as male under SCRFD's landmarks (P(female)
    0.42); stage 4, trained with hair hidden, reads her as female under both detectors."""
    for _, results, details in (run, run_mtcnn):
        assert len(details["files"]["astronaut.jpg"]["faces"]) == 1
        assert results["astronaut.jpg"] == "female"
        assert details["files"]["astronaut.jpg"]["faces"][0]["p_female"] > 0.75


def test_both_detectors_find_the_same_faces_and_genders(run, run_mtcnn):
    scrfd, mtcnn = run[2]["files"]["group.jpg"]["faces"], run_mtcnn[2]["files"]["group.jpg"]["faces"]
    for f in scrfd:
        centre = np.add(f["box"][:2], f["box"][2:]) / 2
        twin = min(mtcnn, key=lambda g: np.hypot(*(np.add(g["box"][:2], g["box"][2:]) / 2 - centre)))
        assert np.abs(np.subtract(f["landmarks"], twin["landmarks"])).max() < 0.2 * (f["box"][2] - f["box"][0])
        assert f["gender"] == twin["gender"]


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


def test_the_face_in_the_middle_outranks_a_larger_one_at_the_edge():
    """A group photo drawn as boxes: a bystander's large face at the edge, the subject's
    smaller one in the middle, a small face near the middle and a big one off centre."""
    w, h = 1000, 600
    bystander, subject = [0, 100, 220, 380], [430, 180, 590, 380]  # 220x280 at the edge, 160x200 central
    assert prominence(np.array([bystander, subject], float), w, h).argmax() == 1
    tiny, big = [480, 280, 520, 320], [550, 150, 750, 400]  # 40x40 dead centre, 200x250 a little off
    assert prominence(np.array([tiny, big], float), w, h).argmax() == 1


def test_max_faces_keeps_the_most_prominent(photos):
    everything = fg.predict(photos / "group.jpg", detector=FaceDetector())["faces"]
    two = fg.predict(photos / "group.jpg", detector=FaceDetector(max_faces=2))["faces"]
    assert [f["box"] for f in two] == [f["box"] for f in everything[:2]]


def test_python_api_takes_every_kind_of_input(photos):
    path = photos / "astronaut.jpg"
    img = Image.open(path)
    det = FaceDetector()
    import numpy as np
    answers = [fg.predict(x, detector=det) for x in (path, path.read_bytes(), img, np.asarray(img))]
    # a file is draft-decoded at half size for the detector, a decoded image resized: the same face, a pixel apart
    assert answers[0] == answers[1] and answers[2] == answers[3] and len(answers[0]["faces"]) == 1
    assert answers[0]["faces"][0]["gender"] == answers[2]["faces"][0]["gender"]
    assert np.abs(np.subtract(answers[0]["faces"][0]["box"], answers[2]["faces"][0]["box"])).max() < 3
    buf = io.BytesIO()
    Image.open(photos / "coffee.jpg").save(buf, "PNG")
    assert fg.predict(buf.getvalue(), detector=det) == {"faces": [], "reason": "no face found"}


def test_unknown_detector_is_refused(photos, tmp_path):
    with pytest.raises(ValueError, match="scrfd, mtcnn"):
        FaceDetector(detector="hog")
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(photos), "--detect", "--detector", "hog"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_detector_survives_pickling_with_its_settings():
    import pickle
    det = pickle.loads(pickle.dumps(FaceDetector(max_faces=3, detector="mtcnn", min_face=30)))
    assert (det.name, det.max_faces, det.min_face) == ("mtcnn", 3, 30)
    assert pickle.loads(pickle.dumps(FaceDetector())).name == "scrfd"


@pytest.mark.parametrize("size, min_face, want", [((250, 250), 20, (0.6, 160, 160)), ((640, 480), 20, (0.6, 384, 288)),
                                                  ((4000, 3000), 20, (0.16, 640, 480)), ((100, 60), 8, (1.0, 128, 64))])
def test_detector_input_follows_the_photo_and_the_smallest_face(size, min_face, want):
    r, w, h = input_size(*size, min_face, 640)
    assert (round(r, 4), w, h) == want and w % 32 == 0 and h % 32 == 0


def test_a_larger_detector_side_is_honoured_and_travels_to_workers():
    import pickle
    det = pickle.loads(pickle.dumps(FaceDetector(max_side=1280, min_face=20)))
    assert det.detector_side(1280, 960) == 768  # 20 px faces reach 12 px: no longer capped at 640
    assert FaceDetector().detector_side(1280, 960) == 640


def _record_inputs(det: FaceDetector, blank_first: bool = False) -> list:
    """The (height, width) of every SCRFD input `det` runs from now on; blank_first: its first
    pass sees a blank input (so finds nothing)."""
    shapes, real = [], det.net.run
    det.net.run = lambda pixels: shapes.append(pixels.shape[:2]) or real(
        np.zeros_like(pixels) if blank_first and len(shapes) == 1 else pixels)
    return shapes


def test_a_draft_decoded_photo_reaches_the_detector_at_the_size_it_asked_for(tmp_path):
    """The smallest face is given in the photo's pixels: a JPEG decoded at half size for the
    detector must not be scaled down by it a second time (a 2000x1500 photo: 640x480 input)."""
    Image.new("RGB", (2000, 1500), (120, 110, 100)).save(tmp_path / "p.jpg")
    det = FaceDetector()
    shapes = _record_inputs(det)
    _, img = det.find(tmp_path / "p.jpg", Classifier().pre)
    assert img.info["photo_scale"] == 2 and shapes == [(480, 640)]


def test_a_photo_with_no_face_found_is_searched_once_more_finer(photos):
    """SCRFD's first pass is sized for speed; a photo where it finds nothing gets a second
    pass at twice the scale (the 512x512 astronaut: 256x256, then 512x512), and only one."""
    det = FaceDetector()
    shapes = _record_inputs(det, blank_first=True)
    faces, _ = det.find(photos / "astronaut.jpg", Classifier().pre)
    assert shapes == [(256, 256), (512, 512)] and len(faces) == 1
    det = FaceDetector()
    shapes = _record_inputs(det)
    assert det.find(photos / "coffee.jpg", Classifier().pre)[0] == [] and len(shapes) == 2  # no face: two passes, no more


def test_big_photo_is_decoded_small_and_reports_full_size_boxes(photos, tmp_path, monkeypatch):
    """A 4000x3000 phone JPEG, stored sideways with EXIF orientation: the detector gets a
    reduced decode, which is also large enough to cut the face from (decoded once), boxes
    come back in the full upright photo's pixels, and the face matches the one cut from
    the full decode."""
    import facegender.faces.detect
    decodes = []
    real = facegender.faces.detect.load_scaled
    monkeypatch.setattr(facegender.faces.detect, "load_scaled", lambda *a: decodes.append(a) or real(*a))
    astronaut = Image.open(photos / "astronaut.jpg")
    canvas = Image.new("RGB", (4000, 3000), (90, 100, 110))
    canvas.paste(astronaut.resize((2048, 2048), Image.BICUBIC), (1500, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    canvas.transpose(Image.ROTATE_90).save(path, quality=92, exif=exif)
    pre, det = Classifier().pre, FaceDetector()
    faces, img = det.find(path, pre)
    assert img.info["photo_scale"] >= 2 and max(img.size) <= 2000  # never the 12 megapixels
    assert len(faces) == 1 and len(decodes) == 1
    expected = np.array([178.3, 59.8, 270.9, 176.8]) * 4 + [1500, 300, 1500, 300]  # astronaut.jpg's box, scaled
    assert np.abs(faces[0].box - expected).max() < 40
    for view, pixels in zip(det.views, faces[0].pixels):  # each view of the same face from all 12 megapixels
        diff = np.abs(pixels.astype(float) - align(canvas, faces[0].landmarks, pre, view, det.template)).mean()
        assert diff < 4  # measured 3.3 for the tightest view (0.6: the most upsampled), 1.5 for 0.8


def test_a_face_is_cut_from_the_draft_decode_unless_it_would_be_upsampled_too_far(photos, tmp_path, monkeypatch):
    """The 512x512 astronaut is decoded once, at 256x256 (its face upsampled under 1/SHARP_STEP);
    the same photo at half size in a 1600x1600 JPEG (face ~46 px) is decoded at 800x800 for
    the detector, then once more in full for the face."""
    import facegender.faces.detect
    decodes = []
    real = facegender.faces.detect.load_scaled
    monkeypatch.setattr(facegender.faces.detect, "load_scaled", lambda *a: decodes.append(a) or real(*a))
    pre, det = Classifier().pre, FaceDetector()
    faces, img = det.find(photos / "astronaut.jpg", pre)
    assert len(faces) == 1 and len(decodes) == 1 and img.size == (256, 256)
    canvas = Image.new("RGB", (1600, 1600), (90, 100, 110))
    canvas.paste(Image.open(photos / "astronaut.jpg").resize((256, 256), Image.BICUBIC), (700, 500))
    canvas.save(tmp_path / "far.jpg", quality=92)
    decodes.clear()
    faces, img = det.find(tmp_path / "far.jpg", pre)
    assert len(faces) == 1 and len(decodes) == 2 and img.info["photo_scale"] == 1


def test_a_limited_detector_shares_the_sessions_and_pickles_with_its_limit():
    import pickle

    from facegender.faces.detect import FaceDetector
    d = FaceDetector()
    view = d.limited(1)
    assert view.net is d.net and view.max_faces == 1 and d.max_faces == 0
    assert pickle.loads(pickle.dumps(view)).max_faces == 1


def test_a_png_without_a_face_is_decoded_once(tmp_path, monkeypatch):
    """The finer second search reuses a full decode; only a reduced JPEG draft is decoded again."""
    from facegender.faces import detect

    calls = []
    real = detect.load_scaled
    monkeypatch.setattr(detect, "load_scaled", lambda *a, **k: calls.append(a) or real(*a, **k))
    pre = Classifier().pre
    for fmt in ("PNG", "JPEG"):
        calls.clear()
        path = tmp_path / f"wall.{fmt.lower()}"
        Image.new("RGB", (1000, 1000), (120, 130, 140)).save(path, fmt)  # JPEG: a half-size draft first
        faces, _ = detect.FaceDetector().find(path, pre)
        assert faces == [] and len(calls) == (1 if fmt == "PNG" else 2)


def test_a_detected_face_is_answered_from_both_views_averaged(photos):
    """SCRFD's faces come in detect.VIEWS (two framings); the answer is the mean of the two
    views' answers, each from the one model call."""
    from facegender.faces.detect import VIEWS
    from facegender.predict import classify, decode
    clf = Classifier(threads=1)
    det = FaceDetector()
    d = decode(photos / "astronaut.jpg", clf.pre, det)
    assert det.views == VIEWS["scrfd"] == (0.6, 0.8) and d.arrays[0].shape == (2, 96, 80, 3)
    assert FaceDetector(detector="mtcnn").views == (0.7,)
    each = clf.predict(d.arrays[0], flip=True)[:, 1]
    assert abs(each[0] - each[1]) > 0.05  # the views do differ for this face
    assert classify([d], clf, detecting=True)[0].faces[0].p_female == pytest.approx(each.mean(), abs=1e-5)
