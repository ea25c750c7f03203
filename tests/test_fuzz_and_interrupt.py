"""Mutated images never crash or hang the decoder; an interrupted run loses nothing."""
import json
import os
import signal
import subprocess
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegender.images import ImageError, load_rgb
from facegender.preprocess import Preprocess

from .conftest import ROOT, real_images

SEEDS = [p.read_bytes() for p in real_images("utkface", "male", 2)]
PNG_SEED = __import__("io").BytesIO()
__import__("PIL.Image").Image.open(real_images("celeba-89x109", "male", 1)[0]).save(PNG_SEED, "PNG")
SEEDS.append(PNG_SEED.getvalue())


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 12))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=4096)))
def test_mutated_and_random_bytes_never_crash(data):
    t = time.perf_counter()
    try:
        img = load_rgb(data, min_size=(80, 96))
        assert img.mode == "RGB"
        face = Preprocess().fit(img)
        assert face.shape == (96, 80, 3)
    except ImageError as e:
        assert e.reason and str(e)
    assert time.perf_counter() - t < 2


def test_killed_run_keeps_finished_results_and_resume_completes(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    sources = real_images("utkface", "female", 200)
    for i in range(12000):  # links to real faces: a folder big enough to interrupt
        os.symlink(sources[i % len(sources)], photos / f"{i:05d}.jpg")
    cmd = [sys.executable, str(ROOT / "process.py"), str(photos), "--batch-size", "32", "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "process_results.json"
    deadline = time.time() + 120
    while time.time() < deadline and not out.exists():
        time.sleep(0.2)
    time.sleep(2.0)  # part-way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    partial = json.loads(out.read_text())
    assert 0 < len(partial) < 12000, "the kill landed part-way"
    assert "--resume" in err

    done = subprocess.run(cmd + ["--resume", "--details", "d.json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = json.loads(out.read_text())
    assert len(final) == 12000
    assert all(final[k] == v for k, v in partial.items()), "nothing finished was lost or changed"
    summary = json.loads((tmp_path / "d.json").read_text())["summary"]
    assert summary["resumed"] == len(partial) and summary["classified"] == 12000 - len(partial)


def _dies_on_poison(names):
    """A worker that dies like an out-of-memory kill when its batch holds the poison file."""
    from facegender.engines import local
    if "poison.jpg" in names:
        os._exit(137)
    return local._worker(names)


def test_a_dead_worker_stops_the_run_cleanly_and_resume_finishes(tmp_path, monkeypatch):
    import shutil

    from facegender.engines import local
    from facegender.options import ProcessOptions
    from facegender.run import EXIT_INTERRUPTED
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, p in enumerate(real_images("utkface", "female", 60)):
        shutil.copy(p, folder / f"{i:03d}.jpg")
    shutil.copy(p, folder / "poison.jpg")
    opts = ProcessOptions(output=str(tmp_path / "r.json"), threads=2, batch_size=8, progress=False)
    monkeypatch.setattr(local, "_run_batch", _dies_on_poison)
    summary = local.process_folder(folder, opts)
    assert summary.interrupted and summary.exit_code == EXIT_INTERRUPTED
    assert any("worker process died" in n for n in summary.notes)
    partial = json.loads((tmp_path / "r.json").read_text())  # valid JSON, only finished files
    assert "poison.jpg" not in partial and all(v in ("male", "female") for v in partial.values())
    monkeypatch.undo()
    opts.resume = True
    summary = local.process_folder(folder, opts)
    assert summary.exit_code == 0 and len(json.loads((tmp_path / "r.json").read_text())) == 61
