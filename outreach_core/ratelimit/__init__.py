"""The PostgreSQL rate limiter every provider call goes through."""

from outreach_core.ratelimit.limiter import (
    WINDOW_SECONDS,
    PgRateLimiter,
    RateLimitReached,
    window_start,
)

__all__ = ["WINDOW_SECONDS", "PgRateLimiter", "RateLimitReached", "window_start"]
