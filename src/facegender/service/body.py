"""Request bodies -> [(file name, bytes)], in memory, capped, with a clear 4xx when bad as a whole.

Starlette's form parser spools large parts to temporary files; uploads here never touch the
disk. A multipart body is parsed as it streams in (python-multipart's `MultipartParser`): each
part named `files` is written once into an `io.BytesIO`, whose `getvalue()` hands over its own
buffer as `bytes` when the part ends (no second copy), other parts are dropped, and the request is refused with
413 as soon as it passes the byte limit. So a multipart request holds about 1x its body,
never a second full copy (the memory bound of docs/service.md). A JSON body is read whole
(base64 must be decoded) and is charged 3x by admission.py. Nothing a client sends (file
names included) is ever used as a file-system path.
"""
from __future__ import annotations

import base64
import binascii
import io
import json

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

FIELD = "files"  # multipart parts carrying images
UNSUPPORTED = ("send multipart/form-data with one or more parts named 'files', "
               "or application/json {\"images\": [{\"name\": ..., \"data\": base64}]}")
NO_NAME = ""  # the `file` of a JSON image sent without a name (every result has a `file`)


class ImageIn(BaseModel):
    name: str | None = Field(None, description="file name, echoed back as `file`")
    data: str = Field(description="the image file, base64 (a data: URL prefix is accepted)")


class ImagesIn(BaseModel):
    images: list[ImageIn] = Field(min_length=1)


def _declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,}")


async def _chunks(request: Request, limit: int):
    """The body's chunks as they arrive; 413 as soon as they pass `limit`, 408 if the client
    goes away first (for instance dropped by the connection's body deadline)."""
    _declared_length(request, limit)
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
            yield chunk
    except ClientDisconnect:
        raise HTTPException(408, "the connection closed before the whole body arrived")


async def read_body(request: Request, limit: int) -> bytearray:
    """The whole body in one buffer, or 413 as soon as it is over `limit` bytes."""
    body = bytearray()
    async for chunk in _chunks(request, limit):
        body += chunk
    return body


def media_type(request: Request) -> tuple[str, dict]:
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    return kind.decode("latin-1").lower(), params


def _too_many(n: int, max_files: int) -> None:
    if n > max_files:
        raise HTTPException(413, f"{n} files in one request is over the limit of {max_files}")


class _Parts:
    """MultipartParser callbacks that keep the `files` parts, each copied once."""

    def __init__(self, max_files: int):
        self.max_files = max_files
        self.files: list[tuple[str, bytes]] = []
        self.headers: dict[bytes, bytes] = {}
        self.field, self.value = b"", b""
        self.name: str | None = None
        self.data: io.BytesIO | None = None  # the part being read, when it is a `files` part

    def callbacks(self) -> dict:
        return {"on_part_begin": self.begin, "on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_done,
                "on_part_data": self.part_data, "on_part_end": self.part_end}

    def begin(self):
        self.headers, self.data = {}, None

    def header_field(self, data, start, end):
        self.field += data[start:end]

    def header_value(self, data, start, end):
        self.value += data[start:end]

    def header_end(self):
        self.headers[self.field.lower()] = self.value
        self.field = self.value = b""

    def headers_done(self):
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") != FIELD.encode():
            return  # another field: its data is not kept
        _too_many(len(self.files) + 1, self.max_files)
        name = options.get(b"filename")
        if name is None:  # a form field, not a file (format: binary in the schema means a file part)
            raise HTTPException(422, f"a part named '{FIELD}' without a filename: send each image as a file "
                                     "(Content-Disposition: form-data; name=\"files\"; filename=\"...\")")
        self.name = name.decode("utf-8", "replace")
        self.data = io.BytesIO()

    def part_data(self, data, start, end):
        if self.data is not None:
            self.data.write(memoryview(data)[start:end])

    def part_end(self):
        if self.data is not None:
            data, self.data = self.data, None
            self.files.append((self.name, data.getvalue()))  # its buffer, not a copy: `data` is dropped


async def read_multipart(request: Request, params: dict, limit: int, max_files: int) -> list[tuple[str, bytes]]:
    """The parts named `files`, in order, parsed as the body streams in: (filename, content)."""
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(422, "multipart/form-data without a boundary parameter")
    parts = _Parts(max_files)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        async for chunk in _chunks(request, limit):
            parser.write(chunk)
        parser.finalize()
    except (MultipartParseError, ValueError) as e:
        raise HTTPException(422, f"malformed multipart body: {e}")
    if not parts.files:
        raise HTTPException(422, f"no complete multipart parts named '{FIELD}' (one per image)")
    return parts.files


def _b64(data: str) -> bytes | dict:
    if data.startswith("data:") and "," in data:
        data = data.split(",", 1)[1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        return {"error": "bad_base64", "message": f"the image data is not valid base64: {e}"}


def parse_json(body: bytes | bytearray, max_files: int) -> list[tuple[str, bytes | dict]]:
    """{"images": [{"name", "data"}]} -> (name, bytes); bad base64 is that image's error."""
    try:
        payload = ImagesIn.model_validate(json.loads(body))
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, ValidationError):
            raise HTTPException(422, json.loads(e.json(include_url=False, include_input=False)))
        raise HTTPException(422, f"the body is not valid JSON: {e}")
    _too_many(len(payload.images), max_files)
    return [(NO_NAME if im.name is None else im.name, _b64(im.data)) for im in payload.images]
