"""facegender in a few functions.

    import facegender.api as fg
    fg.predict("face.jpg")                # {'gender': 'female', 'probability': 0.98, ...}
    fg.process("photos/")                 # writes process_results.json, returns the summary
"""
from __future__ import annotations

import functools

from .classifier import Classifier
from .pipeline import ProcessOptions, Summary, process_folder
from .predict import Decoded, classify, model_inputs


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> Classifier:
    """The ONNX classifier at `path` (default: the shipped model), loaded once."""
    return Classifier(path)


def predict(image, model: str | None = None, detector=None) -> dict:
    """Gender of one face image: a path, bytes, a PIL image or a uint8 array.

    With a `detector` (see `facegender.faces.detect`), the image may be any photo: the result
    lists every face found, the most prominent (size x centrality) first.
    """
    clf = load_model(model)
    arrays, faces, _ = model_inputs(image, clf.pre, detector)  # raises ImageError for a bad image
    return classify([Decoded(arrays, faces)], clf, detecting=detector is not None)[0][1]


def process(folder, **options) -> Summary:
    """Classify a folder as `facegender process` does; options as in `ProcessOptions`."""
    opts = ProcessOptions(**options)
    return process_folder(folder, opts, load_model(opts.model))
