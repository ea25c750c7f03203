"""One input's answer, typed, and its three serialisations: the `--details` / API / HTTP
record (`to_dict`), the flat row the Ray engine writes to Parquet and JSON lines (`to_row`,
`from_row`), and the value in process_results.json (`value`). Built in one place
(`predict.classify`), so every way in gives the same record.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass
class FaceAnswer:
    """One face found in a photo (detect mode)."""
    gender: str
    probability: float  # of the gender given
    p_female: float
    box: list[float]  # x1, y1, x2, y2 in pixels of the upright photo
    landmarks: list[list[float]]  # eyes, nose, mouth corners: 5 x (x, y)
    detector_confidence: float


@dataclass
class Answer:
    """Crop mode fills gender, probability and p_female; detect mode fills faces (most
    prominent first; `reason` when there are none); a file that could not be read fills
    error (a reason code) and message."""
    gender: str | None = None
    probability: float | None = None
    p_female: float | None = None
    faces: list[FaceAnswer] | None = None
    reason: str | None = None
    error: str | None = None
    message: str | None = None
    annotate_error: str | None = None  # detect mode with --annotate: why the annotated copy was not written

    @classmethod
    def failed(cls, error: str, message: str | None) -> "Answer":
        return cls(error=error, message=message)

    @property
    def value(self) -> str | None:
        """What process_results.json holds: the gender (of the most prominent face), else null."""
        if self.faces:
            return self.faces[0].gender
        return self.gender

    def to_dict(self) -> dict:
        """The record, without the fields its kind does not fill."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "Answer":
        faces = d.get("faces")
        return cls(**{**d, "faces": None if faces is None else [FaceAnswer(**f) for f in faces]})

    def to_row(self, path: str) -> dict:
        """Flat, for a fixed Arrow schema: the most prominent face answers for a photo, and the
        faces travel as a JSON string."""
        top = self.faces[0] if self.faces else self
        return {"path": path, "gender": self.value, "probability": top.probability, "p_female": top.p_female,
                "faces": None if self.faces is None else json.dumps([asdict(f) for f in self.faces]),
                "error": self.error, "message": self.message if self.error else self.reason}

    @classmethod
    def from_row(cls, row: dict) -> "Answer":
        if row["error"] is not None:
            return cls.failed(row["error"], row["message"])
        if row["faces"] is not None:
            faces = [FaceAnswer(**f) for f in json.loads(row["faces"])]
            return cls(faces=faces, reason=None if faces else row["message"])
        return cls(gender=row["gender"], probability=row["probability"], p_female=row["p_female"])

