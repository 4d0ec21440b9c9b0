"""Dagster resources: thin wrappers that hand core code what it needs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import SecretStr

from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.enrich.apollo_client import LOOPBACK_HOSTS
from outreach_core.enrich.runner import ApolloConnection, EnrichOptions
from outreach_core.settings import get_settings


class DatalakeResource(dg.ConfigurableResource):
    """The datalake: a local directory, or `s3://bucket/prefix` through dagster-aws."""

    url: str
    s3: S3Resource | None = None

    def team(self, team_id: uuid.UUID) -> TeamLake:
        client = (
            self.s3.get_client() if self.s3 is not None and self.url.startswith("s3://") else None
        )
        return TeamLake(store_from_url(self.url, s3_client=client), team_id)


def default_datalake() -> DatalakeResource:
    url = get_settings().resolved_datalake_url
    return DatalakeResource(url=url, s3=S3Resource() if url.startswith("s3://") else None)


class ApolloResource(dg.ConfigurableResource):
    """Apollo People Enrichment: where, with which key, and the plan's limits and price.

    The defaults are Apollo's free plan (50 requests a minute, 200 an hour, 600 a day);
    paid plans allow about 1,000 a minute. Limits hold across every run and process
    (they live in PostgreSQL). ``price_per_credit`` is what one credit costs you, in USD.
    """

    base_url: str
    api_key: str
    timeout_seconds: float = 10.0
    requests_per_minute: int | None = 50
    requests_per_hour: int | None = 200
    requests_per_day: int | None = 600
    max_in_flight: int = 10
    max_rate_wait_seconds: float = 120.0
    price_per_credit: str = "0.10"
    reveal_phone_number: bool = False
    cache_window_days: int = 30
    claim_stale_after_seconds: float = 1800.0
    busy_wait_seconds: float = 60.0

    def connection(self) -> ApolloConnection:
        host = urlsplit(self.base_url).hostname
        if get_settings().provider_mode == "sandbox" and host not in LOOPBACK_HOSTS:
            raise dg.Failure(
                f"OUTREACH_PROVIDER_MODE is sandbox but Apollo's base_url points at {host}; "
                "start the sandbox (`outreach dev` does) or set OUTREACH_PROVIDER_MODE=live"
            )
        limits = {
            window: limit
            for window, limit in (
                ("minute", self.requests_per_minute),
                ("hour", self.requests_per_hour),
                ("day", self.requests_per_day),
            )
            if limit
        }
        return ApolloConnection(
            base_url=self.base_url,
            api_key=SecretStr(self.api_key),
            timeout=self.timeout_seconds,
            limits=limits,
            max_rate_wait=self.max_rate_wait_seconds,
        )

    def options(self, reference: str | None = None) -> EnrichOptions:
        try:
            price = Decimal(self.price_per_credit)
        except InvalidOperation:
            price = None
        if price is None or not price.is_finite() or price < 0:
            raise dg.Failure(
                f"price_per_credit must be a non-negative amount, got {self.price_per_credit!r}"
            )
        return EnrichOptions(
            price_per_credit=price,
            reveal_phone_number=self.reveal_phone_number,
            cache_window_days=self.cache_window_days,
            claim_stale_after=timedelta(seconds=self.claim_stale_after_seconds),
            max_in_flight=self.max_in_flight,
            busy_wait=self.busy_wait_seconds,
            reference=reference,
        )


SANDBOX_REQUESTS_PER_MINUTE = 600


def default_apollo() -> ApolloResource:
    """Apollo from the environment: APOLLO_BASE_URL and APOLLO_API_KEY. In sandbox mode
    `outreach dev` points them at a sandbox it starts with a 600-a-minute limit; live,
    the free plan's limits apply until the resource is configured for yours."""
    settings = get_settings()
    if settings.provider_mode == "sandbox":
        return ApolloResource(
            base_url=settings.apollo_base_url,
            api_key=dg.EnvVar("APOLLO_API_KEY"),
            requests_per_minute=SANDBOX_REQUESTS_PER_MINUTE,
            requests_per_hour=None,
            requests_per_day=None,
        )
    return ApolloResource(base_url=settings.apollo_base_url, api_key=dg.EnvVar("APOLLO_API_KEY"))
