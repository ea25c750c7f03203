"""facegender in a few functions.

    import facegender.api as fg
    fg.predict("face.jpg")                # {'gender': 'female', 'probability': 0.98, ...}
    fg.process("photos/")                 # writes process_results.json, returns the summary
"""
from __future__ import annotations

import functools

import numpy as np

from .classifier import Classifier
from .detect import DETECT_MAX_SIDE
from .images import load_rgb
from .pipeline import ProcessOptions, Summary, _record, process_folder


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> Classifier:
    """The ONNX classifier at `path` (default: the shipped model), loaded once."""
    return Classifier(path)


def predict(image, model: str | None = None, detector=None) -> dict:
    """Gender of one face image: a path, bytes, a PIL image or a uint8 array.

    With a `detector` (see `facegender.detect`), the image may be any photo: the result
    lists every face found, largest first.
    """
    clf = load_model(model)
    side = DETECT_MAX_SIDE if detector is not None else max(clf.pre.width, clf.pre.height)
    img = load_rgb(image, min_size=(side, side))
    if detector is None:
        return _record(clf.labels, clf.predict(clf.pre.fit(img)[None]), None)[1]
    faces = detector.faces(img, clf.pre)
    probs = clf.predict(np.stack([f.pixels for f in faces]), flip=True) if faces else np.zeros((0, 2))
    return _record(clf.labels, probs, faces)[1]


def process(folder, **options) -> Summary:
    """Classify a folder as `facegender process` does; options as in `ProcessOptions`."""
    opts = ProcessOptions(**options)
    return process_folder(folder, opts, load_model(opts.model))
