"""Run the app on uvicorn, hardened against slow clients, with graceful shutdown.

Connections get header and body deadlines and a cap (connection.py); an idle keep-alive
connection is closed after `keep_alive_seconds`. On SIGTERM new classify requests get 503
(admission.stopping), the listening socket closes (new connections are refused), requests
in flight finish, and the process exits within `graceful_seconds` plus the engine's stop.
"""
from __future__ import annotations

import sys

from .connection import guarded_protocol
from .settings import Settings


def connection_events(metrics):
    """What the protocol reports (("timeout", phase) or ("rejected", reason)) -> the app's metrics."""
    def on_event(kind: str, label: str) -> None:
        (metrics.timeouts if kind == "timeout" else metrics.rejected).labels(label).inc()
    return on_event


def uvicorn_config(app, settings: Settings, **extra):
    """The uvicorn configuration `serve` runs `app` (from create_app(settings)) with."""
    import uvicorn

    options = dict(host=settings.host, port=settings.port, timeout_graceful_shutdown=settings.graceful_seconds,
                   http=guarded_protocol(settings, connection_events(app.state.metrics)),
                   timeout_keep_alive=settings.keep_alive_seconds, access_log=False, log_level="info",
                   server_header=False)
    return uvicorn.Config(app, **{**options, **extra})


def serve(settings: Settings) -> int:
    import uvicorn

    from .app import create_app

    app = create_app(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        print(f"facegender: warning: listening on {settings.host} without an API key (--api-key or "
              "FACEGENDER_API_KEY)", file=sys.stderr)
    config = uvicorn_config(app, settings)
    admission = app.state.admission

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            admission.stopping = True  # before anything closes: a request that slips in is refused, not lost
            super().handle_exit(sig, frame)

    Server(config).run()
    return 0
