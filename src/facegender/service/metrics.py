"""Prometheus metrics: requests by status, latency, files, faces, per-file errors by reason,
and what overload and slow clients cost (refused, timed out, body bytes admitted).

Each app has its own registry, so several apps in one process (tests) never share counts.
Paths are labelled by route template (or "other"), so a scanner cannot blow up the series.
"""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .admission import ADMITTED

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("facegender_requests", "HTTP requests answered", ["method", "path", "status"], registry=r)
        self.latency = Histogram("facegender_request_seconds", "HTTP request latency", ["path"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("facegender_requests_in_flight", "HTTP requests being answered", registry=r)
        self.files = Counter("facegender_files", "files classified or failed", ["mode"], registry=r)
        self.faces = Counter("facegender_faces", "faces classified", ["mode", "gender"], registry=r)
        self.file_errors = Counter("facegender_file_errors", "per-file errors", ["reason"], registry=r)
        self.rejected = Counter("facegender_rejected", "requests or connections refused with 503 for overload",
                                ["reason"], registry=r)  # requests, memory, stopping, connections
        self.timeouts = Counter("facegender_timeouts", "requests or connections dropped for taking too long",
                                ["phase"], registry=r)  # header, body (connection deadlines), request (504)
        self.admitted_bytes = Gauge("facegender_admitted_body_bytes", "body bytes admitted and not yet answered",
                                    registry=r)
        self.batch_faces = Histogram("facegender_batch_faces", "faces per model call",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)

    def count_files(self, records: list[dict], detect: bool) -> None:
        mode = "detect" if detect else "crop"
        self.files.labels(mode).inc(len(records))
        for rec in records:
            if "error" in rec:
                self.file_errors.labels(rec["error"]).inc()
            for face in rec.get("faces", [rec] if "gender" in rec else []):
                self.faces.labels(mode, face["gender"]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no body buffering): counts every HTTP response by route, method and status."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500  # what the client sees if the app dies before answering
        started = time.perf_counter()

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            path = getattr(route, "path", None)
            if path is None:  # refused before routing (admission.py), or no such route
                path = scope["path"] if (scope["method"], scope["path"]) in ADMITTED else "other"
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)
