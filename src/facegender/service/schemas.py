"""Typed responses: what /docs shows and what every answer is checked against."""
from __future__ import annotations

import dataclasses
import typing

from pydantic import BaseModel, Field, create_model

from ..record import Answer


def _with_file(record) -> type[BaseModel]:
    """`record` (a dataclass of record.py) as a response model, with the file it answers for
    first: the HTTP answer is the `--details` record, from the one definition."""
    hints = typing.get_type_hints(record)
    given = {f.name: (hints[f.name], None if f.default is None else f.default) for f in dataclasses.fields(record)}
    return create_model("FileResult", __doc__=record.__doc__,
                        file=(str, Field(description="the part's filename (or the JSON image's name); \"\" when it has none")),
                        **given)


FileResult = _with_file(Answer)


class ClassifyOut(BaseModel):
    results: list[FileResult] = Field(description="one per file, in the order sent")


class ModelOut(BaseModel):
    name: str
    labels: list[str]
    input_size: dict[str, int]
    version: str
    sha256: str = Field(description="of the file loaded (the int8 graph's own where int8 runs)")
    file: str = Field(description="the model file's name")
    precision: str = Field(description="float or int8")
    chosen_because: str = Field(description="why this file: the precision asked for, or what auto saw in the CPU")
    detector: str = Field(description="the face detector's graph file and why that one (the same precision rule)")
    architecture: str | None = None
    validation: dict = Field(description="validation figures embedded at export")
    card: dict = Field(description="every model-card fact embedded in the model (Classifier.meta)")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str = Field(description="ok, or why not: starting, requests, memory (saturated) or stopping")
    in_flight: int = Field(description="classify requests admitted now")
    max_in_flight: int
    body_bytes: int = Field(description="body bytes admitted now")
    max_body_bytes: int


class ErrorOut(BaseModel):
    detail: str | list | dict


ERRORS = {code: {"model": ErrorOut, "description": text} for code, text in [
    (401, "missing or wrong API key"), (408, "the client closed the connection before the whole body arrived"),
    (413, "request too large or too many files"), (415, "not multipart/form-data or JSON"),
    (422, "malformed request"), (503, "at capacity or shutting down: retry after Retry-After seconds"),
    (504, "the request took too long")]}
ERRORS[503]["headers"] = {"Retry-After": {"description": "seconds", "required": True, "schema": {"type": "integer"}}}
