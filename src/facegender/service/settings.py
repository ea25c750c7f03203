"""Every knob of the HTTP service in one object, so the CLI, the environment and the tests
configure the same thing. Defaults are the safe ones: loopback only, no CORS, bounded memory."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ..images import MAX_PIXELS

ENV_PREFIX = "FACEGENDER_"  # each field can be set as FACEGENDER_<FIELD> (e.g. FACEGENDER_API_KEY)


@dataclass
class Settings:
    host: str = "127.0.0.1"  # loopback: reachable from this machine only unless asked
    port: int = 8000
    model: str | None = None  # ONNX model path; None = the shipped one, float or int8 by precision
    precision: str = "auto"  # the shipped model's: auto (int8 where the CPU has VNNI), float or int8
    detector: str = "scrfd"  # for ?detect=true: one of faces.detect.DETECTORS
    min_face: float | None = None  # smallest face searched for, pixels (None: faces.detect.MIN_FACE)
    detector_side: int | None = None  # SCRFD's longest input side (None: faces.detect.SCRFD_MAX_SIDE)
    api_key: str | None = None  # when set, /v1/* and /metrics need X-API-Key or Authorization: Bearer
    cors_origins: list[str] = field(default_factory=list)  # empty = no CORS headers at all
    max_request_bytes: int = 32 * 1024 * 1024  # whole request body, multipart or JSON
    max_files: int = 64  # parts named `files` (or JSON images) per request
    max_pixels: int = MAX_PIXELS  # per image; only lower than process's guard, never higher
    request_timeout: float = 30.0  # seconds per request, body included -> 504 with a detail
    workers: int = 0  # threads for decoding and classifying; 0 = one per core
    max_decoded: int = 64  # decoded inputs held at once (waiting to be classified), all requests together
    batch_size: int = 64  # faces per model call at most
    batch_wait_ms: float = 3.0  # how long the batcher waits for more faces to join a batch
    max_in_flight: int = 32  # /v1/classify requests admitted at once; beyond: 503 + Retry-After at once
    max_body_memory: int = 512 * 1024 * 1024  # body bytes admitted at once (Content-Length, JSON x3); beyond: 503
    retry_after: int = 1  # seconds, the Retry-After of a 503 for overload
    max_connections: int = 512  # open connections; beyond, a new one gets 503 and is closed (idle ones are cheap)
    header_timeout: float = 10.0  # seconds for a request's head, from its first byte (or the connection's open)
    body_timeout: float = 10.0  # seconds within which each `body_chunk_bytes` of a body must arrive
    body_chunk_bytes: int = 16 * 1024  # so the slowest body accepted is this / body_timeout (1.6 KB/s)
    keep_alive_seconds: int = 5  # an idle keep-alive connection is closed after this
    graceful_seconds: float = 8.0  # SIGTERM: in-flight requests get this long, then the process exits

    def __post_init__(self):
        if isinstance(self.cors_origins, str):
            self.cors_origins = [o.strip() for o in self.cors_origins.split(",") if o.strip()]
        self.workers = self.workers or (os.cpu_count() or 1)
        if not 0 < self.max_pixels <= MAX_PIXELS:
            raise ValueError(f"max_pixels must be between 1 and {MAX_PIXELS:,} (process's decompression-bomb guard)")
        for name in ("max_request_bytes", "max_files", "max_decoded", "batch_size", "request_timeout", "max_in_flight",
                     "max_body_memory", "max_connections", "header_timeout", "body_timeout", "body_chunk_bytes",
                     "keep_alive_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_body_memory < self.max_request_bytes:
            raise ValueError("max_body_memory must be at least max_request_bytes (or no full-size request fits)")

    @classmethod
    def from_env(cls, environ=None, **given) -> "Settings":
        """Fields from FACEGENDER_* variables, then the `given` ones (command-line flags) over them."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            kind = next((k for k in (float, int) if k.__name__ in str(f.type)), str)  # lists come as "a,b"
            values[f.name] = kind(raw)
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)
