"""The ONNX Runtime classifier: loads a model (verified), reads its preprocessing from the
metadata, and turns batches of face arrays into probabilities. No PyTorch needed."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import runtime
from .errors import ModelError
from .preprocess import Preprocess

DEFAULT_MODEL = Path(__file__).parent / "weights" / "facegender-default.onnx"
DEFAULT_INT8 = DEFAULT_MODEL.with_name("facegender-default.int8.onnx")  # made by `facegender quantize`
PRECISIONS = ("auto", "float", "int8")
# Faces per ONNX Runtime call, by intra-op threads: the activations of a small batch stay in the
# core's cache. Shipped model, 2,048 validation faces, AMD EPYC Zen 5, faces/s at batch
# 8 / 16 / 32 / 64: 1 thread float 1,328 / 1,351 / 1,226 / 1,045, int8 3,049 / 3,020 / 2,905 /
# 2,576; 2 threads float 1,962 / 2,177 / 2,274 / 2,081, int8 3,980 / 4,642 / 4,679 / 4,570.
CHUNK_ONE_THREAD, CHUNK = 16, 32  # faces per call on one thread, on more


def has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI): only there
    is the int8 graph faster than float (on AVX2 alone it measured slower)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_vnni" in flags or "avx_vnni" in flags


def choose_model(precision: str = "auto", cpuinfo: str | None = None, float_path: Path = DEFAULT_MODEL,
                 int8_path: Path = DEFAULT_INT8) -> tuple[Path, str]:
    """The shipped graph for a precision, and why it was taken: "auto" takes int8 where the
    CPU has VNNI (only there is it faster), float elsewhere. The same rule picks the
    detector's graph (faces/scrfd.py) from its own pair of files."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return (int8_path if precision == "int8" else float_path), f"precision={precision} was asked for"
    if not has_vnni(cpuinfo):
        return float_path, "auto: this CPU lacks VNNI, where int8 is slower than float"
    if not int8_path.is_file():
        return float_path, "auto: this CPU has VNNI but the int8 graph is not installed"
    return int8_path, "auto: this CPU has VNNI (int8 dot products), where int8 is faster"


def default_model(precision: str = "auto", cpuinfo: str | None = None) -> Path:
    """The shipped graph for a precision (see choose_model)."""
    return choose_model(precision, cpuinfo)[0]


class Classifier:
    """A face-gender model: `predict(uint8 NxHxWx3) -> float32 Nx2` probabilities (male, female)."""

    def __init__(self, path: str | os.PathLike | None = None, threads: int = 0, precision: str = "auto"):
        """path: a model file (used as it is); None: the shipped model, float or int8 by
        `precision` (auto: int8 on CPUs with VNNI)."""
        if path:
            self.path, self.chosen_because = Path(path), "a model file was given"
        else:
            self.path, self.chosen_because = choose_model(precision)
        shipped = self.path.resolve() in (DEFAULT_MODEL.resolve(), DEFAULT_INT8.resolve())
        self.session = runtime.session(self.path, threads, required=shipped)
        self.chunk = CHUNK_ONE_THREAD if self.session.get_session_options().intra_op_num_threads == 1 else CHUNK
        try:
            meta = json.loads(self.session.get_modelmeta().custom_metadata_map["facegender"])
        except KeyError:
            raise ModelError(f"{self.path} is an ONNX model without facegender metadata (export it with `facegender export`)")
        self.meta = meta
        self.labels = tuple(meta["labels"])
        self.pre = Preprocess(meta["width"], meta["height"], tuple(meta["mean"]), tuple(meta["std"]))
        self.input_name = self.session.get_inputs()[0].name
        self.mirrors_unsure = bool(meta.get("mirror_margin"))  # the graph re-runs unsure faces mirrored
        self.precision = "int8" if meta.get("int8") else "float"  # quantize marks its graphs

    def predict(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
        """`flip` averages each face with its mirror image (twice the cost, steadier answers).
        A model exported with a mirror margin already does that for the faces it is unsure of,
        which gives the same accuracy, so `flip` adds nothing to it."""
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        probs = self._run(faces)
        if flip and not self.mirrors_unsure:
            probs = (probs + self._run(faces[:, :, ::-1])) / 2
        return probs

    def _run(self, faces: np.ndarray) -> np.ndarray:
        """The model on `faces`, `self.chunk` at a time (see CHUNK)."""
        return np.concatenate([self.session.run(None, {self.input_name: self.pre.normalize(faces[i:i + self.chunk])})[0]
                               for i in range(0, len(faces), self.chunk)])
