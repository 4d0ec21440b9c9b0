"""The HTTP API: `uvicorn outreach_api.main:app`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from outreach_api.routes import catalog, costs, leads, uploads
from outreach_core.catalog import UnknownBucket
from outreach_core.datalake import InvalidKey
from outreach_core.uploads.landing import InvalidUpload, UploadTooLarge

log = logging.getLogger("outreach_api")


def create_app() -> FastAPI:
    app = FastAPI(title="Outreach API", version="0.1.0")
    app.include_router(uploads.router)
    app.include_router(leads.router)
    app.include_router(catalog.router)
    app.include_router(costs.router)

    @app.exception_handler(UnknownBucket)
    async def unknown_bucket(_: Request, exc: UnknownBucket) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "suggestions": exc.suggestions}, status_code=404)

    @app.exception_handler(InvalidUpload)
    async def invalid_upload(_: Request, exc: InvalidUpload) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(UploadTooLarge)
    async def too_large(_: Request, exc: UploadTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(InvalidKey)
    async def invalid_key(_: Request, exc: InvalidKey) -> JSONResponse:
        return JSONResponse({"detail": "invalid path"}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the type only: bodies and headers may carry keys or phone numbers.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
