"""The HTTP routes, kept thin: parse the request (body.py), run the engine, shape the answer.

    from facegender.service import create_app, Settings
    app = create_app(Settings(api_key="..."))     # any ASGI server; `facegender serve` uses uvicorn
"""
from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from importlib.resources import files as package_files

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader

from .admission import Admission, AdmissionMiddleware
from .body import UNSUPPORTED, media_type, parse_json, read_body, read_multipart
from .engine import Engine
from .metrics import Metrics, MetricsMiddleware
from .schemas import ERRORS, ClassifyOut, Health, ModelOut, Ready
from .settings import Settings


def classify_body(max_files: int) -> dict:
    """The request body of /v1/classify as OpenAPI, with this server's file limit."""
    files = {"type": "array", "minItems": 1, "maxItems": max_files, "items": {"type": "string", "format": "binary"}}
    image = {"type": "object", "required": ["data"], "properties": {
        "name": {"type": ["string", "null"]}, "data": {"type": "string", "format": "byte"}}}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["files"], "properties": {"files": files}}},
        "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {
            "images": {"type": "array", "minItems": 1, "maxItems": max_files, "items": image}}}}}}}


TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png"}


def static_assets() -> dict[str, bytes]:
    """The page and the Swagger UI files, read once into memory: requests pick from this
    dict by name and never reach the file system."""
    own = package_files("facegender.service") / "static"
    assets = {p.name: p.read_bytes() for p in own.iterdir() if p.is_file()}
    swagger = package_files("fastapi_offline") / "static"  # Swagger UI 5 (OpenAPI 3.1), from PyPI
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assets[name] = (swagger / name).read_bytes()
    return assets


def create_app(settings: Settings | None = None, classifier=None) -> FastAPI:
    """The service as an ASGI app; the model is loaded here, once."""
    settings = settings or Settings.from_env()
    metrics = Metrics()
    engine = Engine(settings, classifier, metrics)
    assets = static_assets()
    admission = Admission(settings.max_in_flight, settings.max_body_memory, settings.max_request_bytes,
                          settings.retry_after, metrics)

    @asynccontextmanager
    async def lifespan(app):
        await engine.start()
        yield
        await engine.stop()

    app = FastAPI(title="facegender", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Tells a face's gender from a photo. Same answers as `facegender process`.")
    app.state.engine, app.state.settings, app.state.metrics = engine, settings, metrics
    app.state.admission = admission
    app.add_middleware(AdmissionMiddleware, admission=admission)  # inside the metrics: its 503s are counted
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when the server has a key")

    def require_key(request: Request, key: str | None = Depends(key_header)) -> None:
        auth = request.headers.get("authorization", "")
        given = key or (auth[7:] if auth.lower().startswith("bearer ") else "")
        if not secrets.compare_digest(given.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (X-API-Key header or Authorization: Bearer)",
                                headers={"WWW-Authenticate": "Bearer"})

    # declared (and so in the OpenAPI schema) only when there is a key to ask for
    guarded = [Depends(require_key)] if settings.api_key else []
    errors = {k: v for k, v in ERRORS.items() if settings.api_key or k != 401}

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}}, tags=["service"])
    async def healthz():
        """Liveness: 200 once the model is loaded and has classified a face, even when saturated;
        503 before (and once the engine has stopped)."""
        if not engine.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return {"status": "ok"}

    @app.get("/readyz", response_model=Ready, responses={503: {"model": Ready}}, tags=["service"])
    async def readyz():
        """Readiness: 200 when a classify request of the largest size would be admitted now;
        503 while starting, saturated (in-flight or body-byte budget) or stopping."""
        why = "starting" if not engine.ready else admission.saturated()
        state = {"status": why or "ok", **admission.state()}
        return JSONResponse(state, status_code=503) if why else state

    @app.post("/v1/classify", response_model=ClassifyOut, response_model_exclude_none=True,
              openapi_extra=classify_body(settings.max_files), responses=errors, dependencies=guarded,
              tags=["classify"])
    async def classify(request: Request,
                       detect: bool = Query(False, description="ordinary photos: find every face (process --detect)"),
                       max_faces: int | None = Query(None, ge=0, le=10_000,
                                                     description="with detect: the N most prominent faces (0 = all)")):
        """One record per file, in order, with the fields of `process --details`. A bad image is
        that file's `error`; a request bad as a whole gets a 4xx with `detail`."""
        async def answer():
            kind, params = media_type(request)
            if kind not in ("multipart/form-data", "application/json"):
                raise HTTPException(415, UNSUPPORTED)
            if kind == "application/json":
                items = parse_json(await read_body(request, settings.max_request_bytes), settings.max_files)
            else:
                items = await read_multipart(request, params, settings.max_request_bytes, settings.max_files)
            return {"results": await engine.classify_files(items, detect, max_faces)}
        try:
            return await asyncio.wait_for(answer(), settings.request_timeout)
        except TimeoutError:
            metrics.timeouts.labels("request").inc()
            raise HTTPException(504, f"the request took longer than the limit of {settings.request_timeout:g} s")

    @app.get("/v1/model", response_model=ModelOut, dependencies=guarded, tags=["classify"],
             responses={k: v for k, v in errors.items() if k == 401})
    async def model():
        """Labels, input size, version, sha256 and the validation figures of the model card."""
        return engine.model_info()

    @app.get("/metrics", response_class=Response, dependencies=guarded, tags=["service"],
             responses={200: {"content": {"text/plain": {}}}, **{k: v for k, v in errors.items() if k == 401}})
    async def prometheus():
        """Prometheus text: requests by status, latency, files, faces, per-file errors by reason,
        requests refused (503) and dropped for time (header, body, request)."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(assets["index.html"])

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name not in assets:
            raise HTTPException(404, "no such asset")
        suffix = name[name.rfind("."):]
        return Response(assets[name], media_type=TYPES.get(suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="facegender API",
                                   swagger_js_url="/static/swagger-ui-bundle.js", swagger_css_url="/static/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.png")

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facegender")
    except PackageNotFoundError:
        return "0"
