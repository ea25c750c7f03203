"""Request bodies -> [(file name, bytes)], in memory, capped, with a clear 4xx when bad as a whole.

Starlette's form parser spools large parts to temporary files; uploads here never touch the
disk: the body is read into memory (refused with 413 as soon as it passes the byte limit) and
split with python-multipart's streaming `MultipartParser` into in-memory parts. Nothing a
client sends (file names included) is ever used as a file-system path.
"""
from __future__ import annotations

import base64
import binascii
import json

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

FIELD = "files"  # multipart parts carrying images
UNSUPPORTED = ("send multipart/form-data with one or more parts named 'files', "
               "or application/json {\"images\": [{\"name\": ..., \"data\": base64}]}")


class ImageIn(BaseModel):
    name: str | None = Field(None, description="file name, echoed back as `file`")
    data: str = Field(description="the image file, base64 (a data: URL prefix is accepted)")


class ImagesIn(BaseModel):
    images: list[ImageIn] = Field(min_length=1)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it is over `limit` bytes (before reading it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> tuple[str, dict]:
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    return kind.decode("latin-1").lower(), params


def _too_many(n: int, max_files: int) -> None:
    if n > max_files:
        raise HTTPException(413, f"{n} files in one request is over the limit of {max_files}")


def parse_multipart(body: bytes, params: dict, max_files: int) -> list[tuple[str | None, bytes]]:
    """The parts named `files`, in order: (filename, content). Other parts are ignored."""
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(422, "multipart/form-data without a boundary parameter")
    parts: list[dict] = []
    state = {"field": b"", "value": b""}

    def begin():
        parts.append({"headers": {}, "data": bytearray(), "done": False})

    def header_field(data, start, end):
        state["field"] += data[start:end]

    def header_value(data, start, end):
        state["value"] += data[start:end]

    def header_end():
        parts[-1]["headers"][state["field"].lower()] = state["value"]
        state["field"] = state["value"] = b""

    def part_data(data, start, end):
        parts[-1]["data"] += data[start:end]

    def part_end():
        parts[-1]["done"] = True

    callbacks = {"on_part_begin": begin, "on_header_field": header_field, "on_header_value": header_value,
                 "on_header_end": header_end, "on_part_data": part_data, "on_part_end": part_end}
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as e:
        raise HTTPException(422, f"malformed multipart body: {e}")
    files = []
    for part in parts:
        disposition, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if not part["done"] or options.get(b"name") != FIELD.encode():
            continue
        name = options.get(b"filename")
        files.append((name.decode("utf-8", "replace") if name is not None else None, bytes(part["data"])))
        _too_many(len(files), max_files)
    if not files:
        raise HTTPException(422, f"no complete multipart parts named '{FIELD}' (one per image)")
    return files


def _b64(data: str) -> bytes | dict:
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        return {"error": "bad_base64", "message": f"the image data is not valid base64: {e}"}


def parse_json(body: bytes, max_files: int) -> list[tuple[str | None, bytes | dict]]:
    """{"images": [{"name", "data"}]} -> (name, bytes); bad base64 is that image's error."""
    try:
        payload = ImagesIn.model_validate(json.loads(body))
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, ValidationError):
            raise HTTPException(422, json.loads(e.json(include_url=False, include_input=False)))
        raise HTTPException(422, f"the body is not valid JSON: {e}")
    _too_many(len(payload.images), max_files)
    return [(im.name, _b64(im.data)) for im in payload.images]
