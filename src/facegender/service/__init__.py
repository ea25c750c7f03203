"""The HTTP service (`facegender serve`, extra `serve`): FastAPI app, batching engine, web page.

Importing this package needs the `serve` extra; the rest of facegender never imports it.
"""
from .app import create_app
from .settings import Settings

__all__ = ["create_app", "Settings"]
