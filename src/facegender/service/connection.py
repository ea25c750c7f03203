"""Deadlines at the connection level, so slow clients cannot take the service down.

uvicorn's h11 protocol closes nothing that is still sending its head and waits for a body as
long as the client likes: 200 clients sending a header line every 5 s (slowloris) held every
connection slot, and everyone else got 503. This subclass gives each connection
  - `header_timeout` for the request head, from the connection's open or the next request's
    first byte (idle keep-alive connections are closed by uvicorn's keep-alive timeout);
  - `body_timeout` for each `body_chunk_bytes` of a body, so a stalled or trickling body
    (1 byte every 5 s) is dropped, while any client faster than chunk / timeout goes on;
  - a cap, `max_connections`: one beyond it is answered 503 with Retry-After and closed.
A dropped client gets 408 when nothing has been answered yet, and the app sees a disconnect.
Time spent with reading paused (the app not consuming yet) never counts against the client.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def _raw_response(status: int, reason: str, detail: str, extra: bytes = b"") -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n").encode() + extra + b"\r\n" + body


class GuardedH11Protocol(H11Protocol):
    header_timeout = 10.0
    body_timeout = 10.0
    body_chunk_bytes = 16 * 1024
    max_connections = 512
    retry_after = 1
    on_event: Callable[[str, str], None] = staticmethod(lambda kind, label: None)  # ("timeout", phase) etc.

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "header" or "body" while a deadline runs
        self._progress = 0  # body bytes since the body deadline was last renewed

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.on_event("rejected", "connections")
            transport.write(_raw_response(503, "Service Unavailable", "too many open connections; retry later",
                                          f"retry-after: {self.retry_after}\r\n".encode()))
            transport.close()
            return
        self._arm("header")

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        body_before = self.conn.their_state is h11.SEND_BODY
        super().data_received(data)
        self._follow(len(data) if body_before else 0)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow(0)

    def _follow(self, body_bytes: int) -> None:
        """Move the deadline to where the request now is."""
        if self.transport.is_closing():
            return self._disarm()
        state = self.conn.their_state
        if state is h11.IDLE:  # waiting for a head; between requests uvicorn's keep-alive timer runs instead
            if self.timeout_keep_alive_task is not None:
                self._disarm()
            elif self._phase != "header":
                self._arm("header")
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
            else:
                self._progress += body_bytes
                if self._progress >= self.body_chunk_bytes:
                    self._arm("body")
        else:  # body complete, or the connection is ending: nothing is awaited from the client
            self._disarm()

    def _arm(self, phase: str) -> None:
        self._disarm()
        self._phase, self._progress = phase, 0
        delay = self.header_timeout if phase == "header" else self.body_timeout
        self._deadline = self.loop.call_later(delay, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:  # we stopped reading: not the client's fault
            return self._arm(phase)
        self.on_event("timeout", phase)
        if self.cycle is None or not self.cycle.response_started:
            what = "request head" if phase == "header" else f"body: under {self.body_chunk_bytes:,} bytes in"
            limit = self.header_timeout if phase == "header" else self.body_timeout
            self.transport.write(_raw_response(408, "Request Timeout", f"the {what} {limit:g} s"))
        self._phase = None
        self.transport.close()


def guarded_protocol(settings, on_event: Callable[[str, str], None]) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's `http=`, with the deadlines of `settings`."""
    return type("FacegenderH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": settings.header_timeout, "body_timeout": settings.body_timeout,
        "body_chunk_bytes": settings.body_chunk_bytes, "max_connections": settings.max_connections,
        "retry_after": settings.retry_after, "on_event": staticmethod(on_event)})
