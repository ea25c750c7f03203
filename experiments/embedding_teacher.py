"""A second opinion for distillation: dlib's face-recognition network, a different lineage.

Our MobileNetV2 runs (stages 3-7) share one lineage and make the same mistakes: averaging
them does not help. dlib's ResNet (trained for identity on ~3M faces, `face-recognition-models`)
sees faces differently; a logistic regression on its 128-D embeddings guesses gender about as
well as our model, and the two disagree on different faces, so their mean is a better teacher.
It is too big (22 MB) and slow (~20 faces/s on 2 cores) to ship; `train --teacher` takes the CSV
written here.

    pip install -e ".[teacher]"
    python -m experiments.embedding_teacher --model runs/cand/stage5e2.onnx --out runs/teacher.csv

Prints validation accuracy of the ONNX model, the embedding classifier and their mean side by
side, then writes each training image's mean P(female) (the embedding classifier's part
out-of-fold, so no image is judged by a regression that saw its label).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from facegender import manifest
from facegender.classifier import Classifier
from facegender.evaluate import population_masks, predict_rows
from facegender.images import load_rgb
from facegender.metrics import classification_metrics

_net = None  # (shape predictor, recognition network), one per worker process


def _load_dlib():
    global _net
    import dlib
    # find_spec, not import: the package's __init__ needs pkg_resources, gone from new setuptools
    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    _net = (dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")))


def embed_one(args: tuple[str, float]) -> np.ndarray:
    """128-D embedding of one aligned face image, at the aligned CelebA frame's full size."""
    import dlib
    path, x_stretch = args
    im = load_rgb(path)
    if x_stretch != 1.0:  # squeezed frames: restore true proportions
        im = im.resize((round(im.width / x_stretch), im.height), Image.BICUBIC)
    scale = 218 / im.height
    if abs(scale - 1) > 0.05:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    w, h = im.size
    # the face's box: aligned frames (CelebA, taller than wide) and tight crops (UTKFace) put it in the centre
    box = (dlib.rectangle(int(w * .22), int(h * .30), int(w * .78), int(h * .78)) if w < h * 0.95 else
           dlib.rectangle(int(w * .15), int(h * .15), int(w * .85), int(h * .85)))
    pixels = np.asarray(im)
    landmarks, network = _net
    return np.array(network.compute_face_descriptor(pixels, landmarks(pixels, box), 0, 0.25), np.float32)


def embeddings(manifest_path: str, cache_dir: Path) -> tuple[list[manifest.Row], np.ndarray]:
    """Embeddings of every row, cached next to the other runs (they take ~45 min for 49k faces)."""
    rows = manifest.read(manifest_path)
    cache = cache_dir / (Path(manifest_path).stem + "-dlib.npy")
    if cache.exists():
        found = np.load(cache)
        if len(found) == len(rows):
            return rows, found
    with Pool(os.cpu_count() or 1, _load_dlib) as pool:
        vectors = list(tqdm(pool.imap(embed_one, [(r.path, r.x_stretch) for r in rows], chunksize=32),
                            total=len(rows), desc=f"embed {Path(manifest_path).name}", unit="face"))
    vectors = np.stack(vectors)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return rows, vectors


def fit_out_of_fold(train_x, train_y, groups, val_x, folds: int = 5):
    """P(female) for training rows from regressions that never saw them, and for validation rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    fit = lambda idx: LogisticRegression(C=1.0, max_iter=2000).fit(train_x[idx], train_y[idx])  # noqa: E731
    p_train = np.zeros(len(train_x))
    for keep, held in GroupKFold(folds).split(train_x, train_y, groups):
        p_train[held] = fit(keep).predict_proba(train_x[held])[:, 1]
    return p_train, fit(np.arange(len(train_x))).predict_proba(val_x)[:, 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="ONNX model whose answers are averaged with the embeddings'")
    ap.add_argument("--train", default="manifests/train.csv")
    ap.add_argument("--val", default="manifests/val.csv")
    ap.add_argument("--cache", default="runs/embeddings", help="folder for the embedding arrays")
    ap.add_argument("--out", required=True, help="teacher CSV for `train --teacher`")
    a = ap.parse_args()

    train_rows, train_x = embeddings(a.train, Path(a.cache))
    val_rows, val_x = embeddings(a.val, Path(a.cache))
    train_y, val_y = np.array([r.label for r in train_rows]), np.array([r.label for r in val_rows])
    p_emb_train, p_emb_val = fit_out_of_fold(train_x, train_y, [r.group or r.path for r in train_rows], val_x)
    clf = Classifier(a.model)
    p_net_val, _ = predict_rows(val_rows, clf)
    p_net_train, failures = predict_rows(train_rows, clf)
    if failures:
        raise SystemExit(f"{len(failures)} training images failed to load, e.g. {failures[0]}")

    answers = {Path(a.model).name: p_net_val, "dlib embeddings + logistic regression": p_emb_val,
               "mean of the two (the teacher)": (p_net_val + p_emb_val) / 2}
    groups = {**population_masks(val_rows), "all": np.ones(len(val_rows), bool)}
    print(f"validation accuracy ({a.val})\n{'':40s}" + "".join(f"{g:>14s}" for g in groups))
    for name, p in answers.items():
        print(f"{name:40s}" + "".join(f"{classification_metrics(val_y[m], p[m])['accuracy']:14.4f}" for m in groups.values()))

    manifest.write_answers(a.out, train_rows, (p_net_train + p_emb_train) / 2)
    print(f"wrote {len(train_rows)} teacher answers to {a.out}")


if __name__ == "__main__":
    main()
