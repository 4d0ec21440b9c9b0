"""Enrichment defaults, each defined once.

The runner's ``ApolloConnection`` and ``EnrichOptions``, the dedup cache, the Apollo client,
the rate limiter and the Dagster ``ApolloResource`` all take their defaults from here, so a
default changed here changes everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Final

__all__ = [
    "BUSY_WAIT_SECONDS",
    "CACHE_WINDOW_DAYS",
    "CLAIM_STALE_AFTER",
    "FREE_PLAN_LIMITS",
    "HTTP_TIMEOUT_SECONDS",
    "MAX_IN_FLIGHT",
    "MAX_RATE_WAIT_SECONDS",
    "PRICE_PER_CREDIT",
    "REVEAL_PHONE_NUMBER",
]

# One HTTP attempt; retries come on top.
HTTP_TIMEOUT_SECONDS: Final = 10.0

# Apollo's free plan, requests per window (keys as in ``ratelimit.WINDOW_SECONDS``). Paid
# plans allow about 1,000 a minute; configure the resource for yours.
FREE_PLAN_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {"minute": 50, "hour": 200, "day": 600}
)

# Concurrent bulk calls per run.
MAX_IN_FLIGHT: Final = 10

# A wait for a rate window (or a 429's Retry-After) longer than this ends the run,
# resumable, instead of parking workers while they hold claims.
MAX_RATE_WAIT_SECONDS: Final = 120.0

# What one Apollo credit costs, in USD.
PRICE_PER_CREDIT: Final = Decimal("0.10")

# Revealing a mobile number costs 8 extra credits a person: opt in.
REVEAL_PHONE_NUMBER: Final = False

# A person bought is served from the dedup cache for this long.
CACHE_WINDOW_DAYS: Final = 30

# A claim older than this belongs to a run that died: pending ones are taken over, sent
# ones become in doubt. A live run refreshes a claim before every HTTP attempt, so this
# must exceed the longest gap between two refreshes (a rate wait, a Retry-After and a
# timeout, each bounded above, plus the wait for budget room).
CLAIM_STALE_AFTER: Final = timedelta(minutes=30)

# How long a run waits at the end for people another run is buying right now.
BUSY_WAIT_SECONDS: Final = 60.0
