"""The HTTP API: `uvicorn outreach_api.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

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


def create_app() -> FastAPI:
    app = FastAPI(title="Outreach API", version="0.1.0", exception_handlers=HANDLERS)
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
