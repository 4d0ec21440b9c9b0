"""The HTTP API: `uvicorn outreach_api.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from outreach_api.errors import HANDLERS
from outreach_api.limits import Limits, protect
from outreach_api.routes import (
    campaigns,
    catalog,
    consents,
    costs,
    inbox,
    leads,
    reports,
    teams,
    uploads,
    webhooks,
    workflows,
)
from outreach_core.inbox.processing import load_data


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Before the first request: a burst of webhooks on a cold worker would otherwise load
    # the reply rules once per thread.
    await run_in_threadpool(load_data)
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="Outreach API", version="0.1.0", exception_handlers=HANDLERS, lifespan=lifespan
    )
    # First: Twilio's webhooks are the hottest routes, and routes are matched in order.
    app.include_router(webhooks.router)
    app.include_router(uploads.router)
    app.include_router(leads.router)
    app.include_router(catalog.router)
    app.include_router(costs.router)
    app.include_router(campaigns.router)
    app.include_router(teams.router)
    app.include_router(consents.router)
    app.include_router(inbox.router)
    app.include_router(workflows.router)
    app.include_router(reports.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    protect(app, Limits.from_settings())
    return app


app = create_app()
