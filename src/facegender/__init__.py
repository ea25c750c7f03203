"""facegender: tell a face's gender from a photo.

    import facegender as fg
    fg.classify("face.jpg")            # a face crop -> {'gender': 'female', 'probability': 0.98, 'p_female': 0.98}
    fg.classify_crops(["a.jpg", "b.png"])  # many crops in one model call, one record each
    fg.find_faces("group.jpg")         # an ordinary photo -> a record per face, with box and landmarks
    fg.process("photos/")              # a folder -> process_results.json; returns the Summary

The names load on first use (module __getattr__), so `import facegender` alone imports neither
NumPy nor ONNX Runtime and reads no model: the CLI and `facegender.service` start no slower.
"""
from __future__ import annotations

import importlib

_EXPORTS = {  # public name -> "module" that defines it, or "module:its name there"; never a submodule's name
    "classify": "api:predict", "classify_crops": "api", "find_faces": "api", "process": "api",
    "load_model": "api", "load_detector": "api",
    "ProcessOptions": "options", "Summary": "run",
    "FaceDetector": "faces.detect", "Face": "faces.detect",
    "Classifier": "classifier",
    "FacegenderError": "errors", "ModelError": "errors", "ConfigError": "errors", "InputError": "errors",
    "ImageError": "images",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'facegender' has no attribute {name!r}")
    module, _, attr = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(f".{module}", __name__), attr or name)
    globals()[name] = value  # next time a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
