"""Overload is explicit: beyond capacity a classify request gets 503 with Retry-After at once,
instead of queueing without bound (and holding its body) until it times out.

Capacity is two budgets, checked when the request head arrives, before any body is read:
requests admitted at once (`max_in_flight`) and body bytes admitted at once
(`max_body_memory`: the declared Content-Length, or the request limit when none is declared;
JSON is charged 3x for its base64 text and parsed copy). The byte budget is what bounds the
memory held by bodies, whatever the number of connections. /healthz, /readyz and /metrics are
never refused; /readyz reports 503 while saturated, starting or stopping.
"""
from __future__ import annotations

import json

ADMITTED = {("POST", "/v1/classify")}  # the routes that cost memory and CPU
JSON_COST = 3  # base64 text, its parsed string and the decoded bytes


class Admission:
    def __init__(self, max_requests: int, max_bytes: int, max_request_bytes: int, retry_after: int, metrics=None):
        self.max_requests, self.max_bytes, self.max_request_bytes = max_requests, max_bytes, max_request_bytes
        self.retry_after, self.metrics = retry_after, metrics
        self.requests = 0
        self.bytes = 0
        self.stopping = False  # set on SIGTERM: new classify requests are refused while in-flight ones finish

    def cost(self, headers: dict[bytes, bytes]) -> int:
        declared = headers.get(b"content-length", b"")
        size = int(declared) if declared.isdigit() else self.max_request_bytes
        size = min(size, self.max_request_bytes)  # larger ones are refused with 413 before their body is read
        return size * (JSON_COST if b"json" in headers.get(b"content-type", b"").lower() else 1)

    def refusal(self, cost: int) -> str | None:
        """Why a request of `cost` bytes cannot be admitted now, or None."""
        if self.stopping:
            return "stopping"
        if self.requests >= self.max_requests:
            return "requests"
        if self.bytes + cost > self.max_bytes:
            return "memory"
        return None

    def take(self, cost: int, n: int = 1) -> None:
        """Admit (n=1) or release (n=-1) one request of `cost` bytes."""
        self.requests += n
        self.bytes += n * cost
        if self.metrics:
            self.metrics.admitted_bytes.set(self.bytes)

    def saturated(self) -> str | None:
        """What /readyz reports: a request of the largest size could not be admitted now."""
        return self.refusal(self.max_request_bytes)

    def state(self) -> dict:
        return {"in_flight": self.requests, "max_in_flight": self.max_requests,
                "body_bytes": self.bytes, "max_body_bytes": self.max_bytes}

    def retry_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


REASONS = {"stopping": "the server is shutting down; retry on another instance",
           "requests": "the server is at capacity ({max_in_flight} requests in flight); retry after {retry} s",
           "memory": "the server holds its limit of request bodies ({max_body_bytes:,} bytes); retry after {retry} s"}


class AdmissionMiddleware:
    """Pure ASGI: admits or refuses classify requests before the app reads their body."""

    def __init__(self, app, admission: Admission):
        self.app, self.admission = app, admission

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in ADMITTED:
            return await self.app(scope, receive, send)
        adm = self.admission
        cost = adm.cost(dict(scope["headers"]))
        reason = adm.refusal(cost)
        if reason:
            return await self._refuse(reason, send)
        adm.take(cost)
        try:
            await self.app(scope, receive, send)
        finally:
            adm.take(cost, -1)

    async def _refuse(self, reason: str, send) -> None:
        adm = self.admission
        if adm.metrics:
            adm.metrics.rejected.labels(reason).inc()
        detail = REASONS[reason].format(retry=adm.retry_after, **adm.state())
        body = json.dumps({"detail": detail}).encode()
        # Connection: close, so the unread body is not slurped to keep the connection alive
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"retry-after", str(adm.retry_after).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
