"""Dagster resources: thin wrappers that hand core code what it needs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import SecretStr

from outreach_core.datalake import TeamLake, store_from_url
from outreach_core.enrich import defaults
from outreach_core.enrich.apollo_client import LOOPBACK_HOSTS
from outreach_core.enrich.runner import ApolloConnection, EnrichOptions
from outreach_core.sandbox.apollo import DEFAULT_RATE_LIMIT_PER_MINUTE
from outreach_core.settings import get_settings


class DatalakeResource(dg.ConfigurableResource):
    """The datalake in a local directory; `S3DatalakeResource` (s3_datalake.py) puts it on
    S3. The S3 one lives apart because importing dagster-aws (boto3) costs a run worker
    about 2 s, which every upload would wait for."""

    url: str

    def team(self, team_id: uuid.UUID) -> TeamLake:
        return TeamLake(store_from_url(self.url, s3_client=self.s3_client()), team_id)

    def s3_client(self) -> Any | None:
        return None


def default_datalake() -> DatalakeResource:
    url = get_settings().resolved_datalake_url
    if url.startswith("s3://"):
        from dagster_aws.s3 import S3Resource

        from outreach_assets.s3_datalake import S3DatalakeResource

        return S3DatalakeResource(url=url, s3=S3Resource())
    return DatalakeResource(url=url)


class ApolloResource(dg.ConfigurableResource):
    """Apollo People Enrichment: where, with which key, and the plan's limits and price.

    The defaults (``outreach_core.enrich.defaults``) are Apollo's free plan's limits; paid
    plans allow about 1,000 requests a minute. A limit set to None is not enforced.
    Limits hold across every run and process (they live in PostgreSQL).
    ``price_per_credit`` is what one credit costs you, in USD.
    """

    base_url: str
    api_key: str
    timeout_seconds: float = defaults.HTTP_TIMEOUT_SECONDS
    requests_per_minute: int | None = defaults.FREE_PLAN_LIMITS["minute"]
    requests_per_hour: int | None = defaults.FREE_PLAN_LIMITS["hour"]
    requests_per_day: int | None = defaults.FREE_PLAN_LIMITS["day"]
    max_in_flight: int = defaults.MAX_IN_FLIGHT
    max_rate_wait_seconds: float = defaults.MAX_RATE_WAIT_SECONDS
    price_per_credit: str = str(defaults.PRICE_PER_CREDIT)
    reveal_phone_number: bool = defaults.REVEAL_PHONE_NUMBER
    cache_window_days: int = defaults.CACHE_WINDOW_DAYS
    claim_stale_after_seconds: float = defaults.CLAIM_STALE_AFTER.total_seconds()
    busy_wait_seconds: float = defaults.BUSY_WAIT_SECONDS

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


def default_apollo() -> ApolloResource:
    """Apollo from the environment: APOLLO_BASE_URL and APOLLO_API_KEY. In sandbox mode
    `outreach dev` points them at a sandbox it starts with the sandbox's default
    per-minute limit, which this resource then keeps to; live, the free plan's limits
    apply until the resource is configured for yours."""
    settings = get_settings()
    if settings.provider_mode == "sandbox":
        return ApolloResource(
            base_url=settings.apollo_base_url,
            api_key=dg.EnvVar("APOLLO_API_KEY"),
            requests_per_minute=DEFAULT_RATE_LIMIT_PER_MINUTE,
            requests_per_hour=None,
            requests_per_day=None,
        )
    return ApolloResource(base_url=settings.apollo_base_url, api_key=dg.EnvVar("APOLLO_API_KEY"))
