"""The one predict path: decode -> (detect -> align) -> classify -> Answer (record.py).

`process` (local engine), `api.classify`, the HTTP service and the Ray batch function all
call these functions, so the same input gets the same answer whichever way it came in.
Stages are separate so a caller can batch: decode many inputs (in threads or processes),
then classify all their faces in one model call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .images import ImageError, load_rgb
from .record import Answer, FaceAnswer


@dataclass
class Decoded:
    """One input after decode (+ detect + align): the model inputs, or the reason it failed."""
    arrays: list = field(default_factory=list)  # per face, its views: uint8 V x H x W x 3 model inputs
    faces: list | None = None  # detect mode: detect.Face per array; crop mode: None
    image: object = None  # the decoded photo, kept only when asked (annotation)
    error: dict | None = None  # {"error": reason, "message": ...}
    seconds: float = 0.0  # decode (+ detect) time


def model_inputs(source, pre, detector=None):
    """Decode one input and cut what the classifier takes: (arrays, faces, image).

    Without a detector the image is one face crop, one view (faces is None); with one, every
    face found, aligned, in the detector's views (arrays may be empty). Raises ImageError
    for a bad input.
    """
    if detector is None:
        side = max(pre.width, pre.height)
        img = load_rgb(source, min_size=(side, side))
        return [pre.fit(img)[None]], None, img
    faces, img = detector.find(source, pre)  # decodes a big photo only as large as detection and the faces need
    return [f.pixels for f in faces], faces, img


def decode(source, pre, detector=None, keep_image: bool = False) -> Decoded:
    """`model_inputs` that never raises: a bad input becomes a per-item error."""
    t = time.perf_counter()
    try:
        arrays, faces, img = model_inputs(source, pre, detector)
        out = Decoded(arrays, faces, img if keep_image else None)
    except ImageError as e:
        out = Decoded(error={"error": e.reason, "message": str(e)})
    except Exception as e:  # never lose a run or a request to one input
        out = Decoded(error={"error": "unexpected", "message": f"{type(e).__name__}: {e}"})
    out.seconds = time.perf_counter() - t
    return out


def classify(decoded: list[Decoded], classifier, detecting: bool) -> list[Answer]:
    """All faces of `decoded` in one model call -> one Answer each (a failed input's is its error).

    A face's views are averaged (detect mode: faces/detect.py VIEWS). Detected faces are also
    averaged with their mirror image (+0.4 points on validation portraits for a plain model;
    one exported with a mirror margin does it itself for unsure faces).
    """
    faces = [a for d in decoded for a in d.arrays]
    probs = classifier.predict(np.concatenate(faces), flip=detecting) if faces else np.zeros((0, 2), np.float32)
    if faces:
        probs = np.stack([p.mean(0) for p in np.split(probs, np.cumsum([len(a) for a in faces])[:-1])])
    out, k = [], 0
    for d in decoded:
        if d.error:
            out.append(Answer.failed(d.error["error"], d.error.get("message")))
            continue
        out.append(answer(classifier.labels, probs[k:k + len(d.arrays)], d.faces))
        k += len(d.arrays)
    return out


def answer(labels, probs, faces) -> Answer:
    """One image's Answer from its faces' probabilities (crop mode: faces is None, one row)."""
    def one(p) -> dict:
        i = int(p.argmax())
        return {"gender": labels[i], "probability": round(float(p[i]), 6), "p_female": round(float(p[1]), 6)}
    if faces is None:
        return Answer(**one(probs[0]))
    found = [FaceAnswer(**one(p), **f.describe()) for p, f in zip(probs, faces)]  # most prominent first (detect.prominence)
    return Answer(faces=found, reason=None if found else "no face found")
