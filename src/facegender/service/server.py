"""Run the app on uvicorn with graceful shutdown: on SIGTERM the listening socket closes (new
connections are refused), requests in flight finish, and the process exits within
`graceful_seconds` plus the engine's stop."""
from __future__ import annotations

import sys

from .settings import Settings


def serve(settings: Settings) -> int:
    import uvicorn

    from .app import create_app

    app = create_app(settings)
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        print(f"facegender: warning: listening on {settings.host} without an API key (--api-key or "
              "FACEGENDER_API_KEY)", file=sys.stderr)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=settings.graceful_seconds,
                            limit_concurrency=settings.max_connections, access_log=False, log_level="info",
                            server_header=False)
    uvicorn.Server(config).run()
    return 0
