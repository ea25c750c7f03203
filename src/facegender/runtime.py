"""ONNX Runtime sessions, made one way for every model file the package runs (classifier,
SCRFD, MTCNN): the file checked against its `.sha256` sidecar first, threads as asked and
no spinning (an idle thread would steal the core a decoder needs), any failure a ModelError."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import ModelError


def verify(path: Path, required: bool = False) -> None:
    """Compare the file with its `.sha256` sidecar, when one exists (export writes one);
    `required`: a shipped file, whose sidecar must be there."""
    sidecar = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if sidecar.exists():
        expected = sidecar.read_text().split()[0]
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise ModelError(f"model file {path} is damaged: sha256 {actual[:12]}... does not match "
                             f"{sidecar.name} ({expected[:12]}...); reinstall or re-export it")
    elif required:
        raise ModelError(f"the shipped model's checksum file {sidecar} is missing; reinstall facegender")


def session(path: str | os.PathLike, threads: int = 0, required: bool = False, optimize: bool = True):
    """A verified CPU InferenceSession with `threads` intra-op threads (0: one per core).
    `optimize=False` runs the graph as written (int8: QDQ unfused, int32-exact sums)."""
    import onnxruntime as ort

    path = Path(path)
    verify(path, required)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"cannot load model {path}: {str(e).splitlines()[0][:300]}")
