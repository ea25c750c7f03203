"""Every input is accounted for: a corpus of bad and unusual files, made here, through `process`."""
import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from facegender.images import ImageError, load_rgb

from .conftest import ROOT, real_images

FACE = real_images("celeba-89x109", "female", 1)[0]


def _face(mode="RGB") -> Image.Image:
    return Image.open(FACE).convert(mode)


def _png_with_size(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (the data is a stub): a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def _exif_rotated_jpeg() -> bytes:
    """The face stored lying on its side, with EXIF orientation 6 (rotate 90 CW to view)."""
    stored = _face().transpose(Image.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def _phone(fmt: str, img: Image.Image, **kw) -> bytes:
    """img as a phone writes it: HEIC through pillow-heif, AVIF through Pillow's own plugin."""
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener
        register_heif_opener()
    buf = io.BytesIO()
    img.save(buf, fmt, quality=90, **kw)
    return buf.getvalue()


def _exif_rotated_phone(fmt: str) -> bytes:
    """The face stored on its side with EXIF orientation 6 (pillow-heif turns that into the
    HEIF's own rotation box on save, as iPhones write it; AVIF keeps the EXIF tag)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _phone(fmt, _face().transpose(Image.ROTATE_90), exif=exif.tobytes())


def _phone_bomb(fmt: str) -> bytes:
    """A small HEIC/AVIF whose 'ispe' box (the image size in the header) claims 9000x6000."""
    data = bytearray(_phone(fmt, Image.new("RGB", (64, 64), (120, 90, 80))))
    at = data.find(b"ispe")
    data[at + 8:at + 16] = struct.pack(">II", 9000, 6000)
    return bytes(data)


def build_corpus(d):
    """name -> expected outcome: 'ok' or the error reason."""
    face_bytes = FACE.read_bytes()
    expect = {}

    def put(name, data, outcome):
        (d / name).write_bytes(data)
        expect[name] = outcome

    def save(name, img, fmt, outcome="ok", **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        put(name, buf.getvalue(), outcome)

    put("empty.jpg", b"", "empty_file")
    put("truncated.jpg", face_bytes[: len(face_bytes) // 2], "truncated")
    put("random.jpg", np.random.default_rng(0).bytes(5000), "not_an_image")
    put("notes.txt", b"this is not an image\n", "not_an_image")
    save("face.png", _face(), "PNG")
    save("face.webp", _face(), "WEBP")
    save("face.bmp", _face(), "BMP")
    save("face.tiff", _face(), "TIFF")
    frames = [_face(), _face().transpose(Image.FLIP_LEFT_RIGHT)]
    save("animated.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("sixteen_bit.png", Image.fromarray((np.asarray(_face("L"), np.uint16) * 257)).convert("I;16"), "PNG")
    save("palette.png", _face().convert("P", palette=Image.ADAPTIVE), "PNG")
    save("gray.jpg", _face("L"), "JPEG")
    save("cmyk.jpg", _face("CMYK"), "JPEG")
    save("alpha.png", _face("RGBA"), "PNG")
    put("rotated_exif.jpg", _exif_rotated_jpeg(), "ok")
    save("tiny.png", Image.new("RGB", (1, 1), (128, 100, 90)), "PNG")
    for fmt, suffix in (("HEIF", "heic"), ("AVIF", "avif")):
        put(f"face.{suffix}", _phone(fmt, _face()), "ok")
        put(f"rotated_exif.{suffix}", _exif_rotated_phone(fmt), "ok")
        put(f"bomb.{suffix}", _phone_bomb(fmt), "too_large")
    put("bomb.png", _png_with_size(30000, 30000), "too_large")
    os.symlink(d / "missing-target.jpg", d / "broken_link.jpg")
    expect["broken_link.jpg"] = "broken_symlink"
    put("locked.jpg", face_bytes, "ok" if os.geteuid() == 0 else "permission_denied")  # root reads anything
    os.chmod(d / "locked.jpg", 0)
    (d / "x.jpg").mkdir()
    expect["x.jpg"] = "not_a_file"
    for name in ("with space.jpg", "ünïcødé-名前.jpg", "new\nline.jpg"):
        put(name, face_bytes, "ok")
    return expect


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    photos = d / "photos"
    photos.mkdir()
    expect = build_corpus(photos)
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(photos), "--details", "details.json", "-q"],
                       cwd=d, capture_output=True, text=True, timeout=120)
    return expect, r, d


def test_every_file_has_a_result_or_its_reason(corpus_run):
    expect, r, d = corpus_run
    results = json.loads((d / "process_results.json").read_text())
    files = json.loads((d / "details.json").read_text())["files"]
    assert set(files) == set(expect), "every input is accounted for"
    for name, outcome in expect.items():
        if outcome == "ok":
            assert results[name] in ("male", "female"), (name, files[name])
        else:
            assert name not in results
            assert files[name]["error"] == outcome, (name, files[name])
            assert files[name]["message"]
    assert r.returncode == 1  # some failed
    assert "failures by reason" in r.stderr


def test_summary_counts(corpus_run):
    expect, _, d = corpus_run
    summary = json.loads((d / "details.json").read_text())["summary"]
    failed = sum(v != "ok" for v in expect.values())
    assert summary["inputs"] == len(expect)
    assert summary["failed"] == failed and summary["classified"] == len(expect) - failed


def test_exif_orientation_is_honoured():
    upright = np.asarray(_face(), np.float32)
    decoded = np.asarray(load_rgb(_exif_rotated_jpeg()), np.float32)
    assert decoded.shape == upright.shape
    assert np.abs(decoded - upright).mean() < 6


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_upright(fmt):
    upright = np.asarray(_face(), np.float32)
    for data in (_phone(fmt, _face()), _exif_rotated_phone(fmt)):
        decoded = np.asarray(load_rgb(data), np.float32)
        assert decoded.shape == upright.shape
        assert np.abs(decoded - upright).mean() < 6


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_bomb_is_refused_from_the_header(fmt):
    with pytest.raises(ImageError) as e:
        load_rgb(_phone_bomb(fmt))
    assert e.value.reason == "too_large" and "9000x6000" in str(e.value)


def test_heif_support_is_loaded_only_when_a_file_needs_it(tmp_path):
    heic = tmp_path / "face.heic"
    heic.write_bytes(_phone("HEIF", _face()))
    code = ("import sys; from facegender import run, api; from facegender.images import load_rgb; "
            f"load_rgb({str(FACE)!r}); assert 'pillow_heif' not in sys.modules, 'imported for a JPEG'; "
            f"assert load_rgb({str(heic)!r}).size == (89, 109); assert 'pillow_heif' in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_bomb_is_refused_from_the_header_quickly():
    import time
    t = time.perf_counter()
    with pytest.raises(ImageError) as e:
        load_rgb(_png_with_size(30000, 30000))
    assert e.value.reason == "too_large" and "900,000,000 pixels" in str(e.value)  # PIL's own guard, as ours
    assert time.perf_counter() - t < 1


def test_importing_leaves_pil_settings_alone():
    code = ("from PIL import Image, ImageFile; before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES); "
            "import facegender.api, facegender.images; "
            "assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_recursive_descends_and_keys_are_relative(tmp_path):
    (tmp_path / "in" / "a" / "b").mkdir(parents=True)
    for rel in ("top.jpg", "a/one.jpg", "a/b/two.jpg"):
        (tmp_path / "in" / rel).write_bytes(FACE.read_bytes())
    flat = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert flat.returncode == 0 and "use --recursive" in flat.stderr
    assert list(json.loads((tmp_path / "process_results.json").read_text())) == ["top.jpg"]
    deep = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "-r", "-q"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert deep.returncode == 0
    assert sorted(json.loads((tmp_path / "process_results.json").read_text())) == ["a/b/two.jpg", "a/one.jpg", "top.jpg"]


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), "empty", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and json.loads((tmp_path / "process_results.json").read_text()) == {}
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), "nowhere", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 4 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_unwritable_output_fails_clearly_and_leaves_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(FACE.read_bytes())
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "-o", "no/such/dir/out.json", "-q"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 4 and "cannot write" in r.stderr and "Traceback" not in r.stderr
    if os.geteuid() != 0:  # root ignores a read-only mode
        ro = tmp_path / "ro"
        ro.mkdir()
        os.chmod(ro, 0o500)
        r = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "-o", "ro/out.json", "-q"],
                           cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 4 and not list(ro.iterdir())


def test_existing_output_is_replaced_with_a_notice(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(FACE.read_bytes())
    (tmp_path / "process_results.json").write_text('{"old": "male"}')
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0 and "will be replaced" in r.stderr
    assert list(json.loads((tmp_path / "process_results.json").read_text())) == ["a.jpg"]


def test_damaged_model_is_one_clear_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(FACE.read_bytes())
    (tmp_path / "bad.onnx").write_bytes(b"not a model at all")
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "--model", "bad.onnx", "-q"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("facegender: error: cannot load model") and len(r.stderr.strip().splitlines()) == 1


def test_only_bad_files_exits_3(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"")
    (tmp_path / "in" / "b.txt").write_text("no")
    r = subprocess.run([sys.executable, str(ROOT / "process.py"), "in", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 3 and json.loads((tmp_path / "process_results.json").read_text()) == {}
