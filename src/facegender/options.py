"""The options of a run over a folder or an archive: one object, passed whole from the CLI,
`api.process` and the service's settings to the local and Ray engines."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

ENGINES = ("local", "ray")
FORMATS = ("json", "parquet", "jsonl")  # the Ray engine's outputs; the local engine writes json


@dataclass
class ProcessOptions:
    """Everything `facegender process` takes, passed whole through `api.process`, the CLI
    (its flags are these fields) and both engines."""
    output: str = "process_results.json"  # file name -> "male"/"female", as the original
    details: str | None = None  # optional JSON with probabilities, errors and the summary
    model: str | None = None  # ONNX model path; None = the shipped default
    precision: str = "auto"  # the shipped default's graph: one of classifier.PRECISIONS (auto: int8 on CPUs with VNNI)
    recursive: bool = False  # descend into sub-folders (keys become relative paths)
    resume: bool = False  # keep finished results from `output` and do only the rest
    batch_size: int = 64  # images per ONNX Runtime call (64: full speed, ~200 MB peak)
    threads: int = 0  # worker processes (one per core); 0 = all cores
    checkpoint_seconds: float = 10.0  # write partial results this often
    progress: bool = True  # show a progress bar on stderr
    detect: bool = False  # find faces in ordinary photos instead of taking face crops
    detector: str = "scrfd"  # with detect: one of faces.detect.DETECTORS
    max_faces: int = 0  # with detect: keep the N most prominent faces (0 = all)
    min_face: float | None = None  # with detect: smallest face searched for, pixels (None: detect.MIN_FACE)
    detector_side: int | None = None  # with detect (SCRFD): longest side of its input (None: detect.SCRFD_MAX_SIDE)
    annotate: str | None = None  # with detect: folder for copies with boxes drawn
    engine: str = "local"  # "local" (a process per core) or "ray" (engines.ray_engine)
    format: str = "json"  # ray: "json", or row files "parquet" / "jsonl" into the folder or URI `output`
    address: str | None = None  # ray: the cluster to join; None starts a local Ray on `threads` cores
    read_tasks: int = 0  # ray: file reads at once (0: a quarter of the actors)

    def __post_init__(self):
        from .classifier import PRECISIONS
        from .faces.detect import DETECTORS

        for name, allowed in (("precision", PRECISIONS), ("detector", DETECTORS), ("engine", ENGINES),
                              ("format", FORMATS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")

    def face_detector(self, threads: int = 1):
        """The detector these options ask for (a new one: its ONNX sessions are not shared), or None."""
        if not self.detect:
            return None
        from .faces.detect import FaceDetector
        return FaceDetector(max_faces=self.max_faces, min_face=self.min_face, threads=threads,
                            detector=self.detector, max_side=self.detector_side, precision=self.precision)
