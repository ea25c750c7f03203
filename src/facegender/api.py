"""facegender in a few functions; `import facegender` exports them (docs/architecture.md).

    import facegender as fg
    fg.predict("face.jpg")                # {'gender': 'female', 'probability': 0.98, ...}
    fg.find_faces("group.jpg")            # one such record per face, with its box, most prominent first
    fg.process("photos/")                 # writes process_results.json, returns the summary
"""
from __future__ import annotations

import dataclasses
import functools

from .classifier import Classifier
from .engines.local import process_folder
from .faces.detect import FaceDetector
from .options import ProcessOptions
from .predict import Decoded, classify, decode, model_inputs
from .run import Summary


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None, precision: str = "auto") -> Classifier:
    """The ONNX classifier at `path` (default: the shipped model, float or int8 by
    `precision`; auto: int8 where the CPU has VNNI), loaded once."""
    return Classifier(path, precision=precision)


def predict(image, model: str | None = None, detector=None) -> dict:
    """Gender of one face image: a path, bytes, a PIL image or a uint8 array.

    With a `detector` (see `facegender.faces.detect`), the image may be any photo: the result
    lists every face found, the most prominent (size x centrality) first.
    """
    clf = load_model(model)
    arrays, faces, _ = model_inputs(image, clf.pre, detector)  # raises ImageError for a bad image
    return classify([Decoded(arrays, faces)], clf, detecting=detector is not None)[0].to_dict()


def classify_crops(images, model: str | None = None) -> list[dict]:
    """Gender of many face crops in one model call (faster than `predict` on each), in order;
    a bad image's record is its error ({"error": reason, "message": ...}) and the rest go on."""
    clf = load_model(model)
    return [a.to_dict() for a in classify([decode(image, clf.pre) for image in images], clf, detecting=False)]


@functools.lru_cache(maxsize=4)
def load_detector(detector: str = "scrfd", max_faces: int = 0) -> FaceDetector:
    """A face detector ("scrfd" or "mtcnn"), built once: its ONNX sessions take a while to load."""
    return FaceDetector(max_faces=max_faces, detector=detector)


def find_faces(photo, model: str | None = None, detector: str = "scrfd", max_faces: int = 0) -> list[dict]:
    """Every face in an ordinary photo, most prominent first (at most `max_faces`; 0 = all): its
    gender, probability, p_female, box, landmarks and detector_confidence. [] when none is found."""
    return predict(photo, model, load_detector(detector, max_faces))["faces"]


def process(folder, options: ProcessOptions | None = None, **fields) -> Summary:
    """Classify a folder (with engine="ray", also a URI) as `facegender process` does: the
    options whole, or any of `ProcessOptions`'s fields by name (over `options`)."""
    opts = dataclasses.replace(options or ProcessOptions(), **fields)
    if opts.engine == "ray":
        from .engines.ray_engine import process_source
        return process_source(str(folder), opts)
    return process_folder(folder, opts, load_model(opts.model, opts.precision))
