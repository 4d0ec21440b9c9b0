"""Enrich one team's leads of one sector against Apollo, paying for each person at most once.

For every lead still open (never tried, or left by an earlier run) the runner:

1. builds the match input; leads Apollo could not match are ``insufficient_data``, free;
2. groups leads by identity (``MatchInput.identity_key``), so duplicates share one lookup;
3. sends identities in bulk calls of up to 10 from a pool of ``max_in_flight`` workers.
   Per call: claim the identities in the dedup cache (settled answers are served from
   it), reserve the worst-case cost in the team's budget, wait for the shared rate
   limiter, mark the claims ``sent``, call with retries and a circuit breaker, then write
   the cache entries, the ledger row and the leads in one transaction.

Stops cleanly, leaving the remaining leads open for the next run, when the budget cap is
reached, the provider keeps failing (circuit open), the rate quota is spent for longer
than ``max_rate_wait``, the provider refuses our key (401/403), or it answers in a way
that means our setup is wrong (any other 4xx, a redirect): see ``StopReason``. A call
whose payload Apollo rejects (400/413/422) is about those people, not the run: they are
``quarantined`` with Apollo's reason, nothing is charged, and the run goes on. Identities
whose request was in flight when a run died are settled as ``in_doubt`` at the next run:
booked at their worst-case cost, never bought again automatically (see ``cache``).

Lock order: cache entries, then the leads of each key, are locked in identity-key order
in every transaction (see ``cache``), so runs over the same people cannot deadlock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from outreach_core.costs import budget
from outreach_core.crashpoints import crashpoint
from outreach_core.db.engine import app_engine, tenant_session
from outreach_core.db.states import CacheStatus, CostCategory, EnrichmentStatus
from outreach_core.db.tables import LEAD_OPEN_FOR_ENRICHMENT
from outreach_core.enrich import cache, defaults
from outreach_core.enrich.apollo_client import (
    MAX_BULK,
    ApolloClient,
    ApolloPerson,
    BulkResult,
    MatchInput,
    MatchStatus,
    QuotaInfo,
    credits_for,
    match_eligibility,
    max_credits,
)
from outreach_core.enrich.derive import derive
from outreach_core.enrich.errors import (
    AccessDenied,
    CircuitOpen,
    MalformedResponse,
    PermanentError,
    RateLimited,
    RequestRejected,
    TransientError,
)
from outreach_core.enrich.resilience import (
    BreakerState,
    CircuitBreaker,
    RetryEvent,
    RetryPolicy,
)
from outreach_core.leads.scoring import score_enrichment
from outreach_core.ratelimit import PgRateLimiter, RateLimitReached

__all__ = ["ApolloConnection", "EnrichOptions", "EnrichStats", "StopReason", "enrich_sector"]

logger = logging.getLogger(__name__)

PROVIDER: Final = "apollo"
OPERATION: Final = "people_bulk_match"
IN_DOUBT_OPERATION: Final = "people_bulk_match_unconfirmed"
_OPEN = f"({LEAD_OPEN_FOR_ENRICHMENT})"
# With the budget full, how long a worker waits for this run's calls in flight to settle
# at what they really cost (less than reserved) before it calls the cap reached.
_OWN_CALLS_SETTLE_WAIT: Final = 120.0


class StopReason(StrEnum):
    """Why a run ended early; every one leaves the remaining leads open for a rerun."""

    BUDGET = "budget_cap_reached"  # the team's monthly cap: the run still succeeds
    PROVIDER_DOWN = "provider_unavailable"  # circuit open: Apollo keeps failing
    RATE_QUOTA = "rate_quota_spent"  # the next slot is further off than max_rate_wait
    REFUSED = "provider_refused"  # 401/403: the key or the account is refused
    # Any other 4xx (402, 404, 405...) or a redirect: no request of ours can succeed until
    # the base URL, the plan or the account is fixed, so buying on would be pointless.
    MISCONFIGURED = "provider_misconfigured"


@dataclass(frozen=True)
class ApolloConnection:
    base_url: str
    api_key: SecretStr
    timeout: float = defaults.HTTP_TIMEOUT_SECONDS
    limits: dict[str, int] = field(default_factory=lambda: dict(defaults.FREE_PLAN_LIMITS))
    max_rate_wait: float = defaults.MAX_RATE_WAIT_SECONDS
    allow_insecure_http: bool = False


@dataclass(frozen=True)
class EnrichOptions:
    price_per_credit: Decimal = defaults.PRICE_PER_CREDIT
    reveal_phone_number: bool = defaults.REVEAL_PHONE_NUMBER
    cache_window_days: int = defaults.CACHE_WINDOW_DAYS
    claim_stale_after: timedelta = defaults.CLAIM_STALE_AFTER
    max_in_flight: int = defaults.MAX_IN_FLIGHT
    busy_wait: float = defaults.BUSY_WAIT_SECONDS
    chunk_leads: int = 5_000
    reference: str | None = None  # written on ledger rows, e.g. "dagster_run:<id>"

    @property
    def credits_each(self) -> int:
        """The most one person can cost."""
        return max_credits(self.reveal_phone_number)


@dataclass
class EnrichStats:
    leads: int = 0  # open leads looked at
    insufficient_data: int = 0  # skipped, no call
    identities: int = 0  # distinct people among the eligible leads
    requests: int = 0  # HTTP attempts sent to Apollo
    calls: int = 0  # bulk calls answered
    matched: int = 0  # people matched by our calls
    no_match: int = 0
    quarantined: int = 0
    rejected_calls: int = 0  # bulk calls Apollo refused (400/413/422): quarantined, free
    cache_hits: int = 0  # people answered from the dedup cache, no call
    enriched_leads: int = 0  # leads written with a match (ours or cached)
    failed: int = 0  # people given up after retries (enrich_failed, not charged)
    busy: int = 0  # people another run was still buying when we gave up waiting
    in_doubt: int = 0  # people whose request was in flight when a run died
    in_doubt_credits: int = 0  # their worst case, booked by this run (not in credits)
    in_doubt_spend: Decimal = Decimal(0)
    retries: int = 0
    http_429: int = 0
    possibly_charged_requests: int = 0  # timeouts after sending: Apollo may have billed
    credits: int = 0
    spend: Decimal = Decimal(0)
    stopped: StopReason | None = None
    message: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        out = asdict(self)
        out["spend"] = float(self.spend)
        out["in_doubt_spend"] = float(self.in_doubt_spend)
        out["stopped"] = self.stopped.value if self.stopped else None
        return out


@dataclass(frozen=True)
class _Person:
    key: str
    input: MatchInput


def _domain(website: str | None) -> str | None:
    if not website or not website.strip():
        return None
    value = website.strip()
    host = urlsplit(value if "://" in value else f"http://{value}").hostname
    return host.removeprefix("www.") if host else None


def match_input(lead: Any, reveal_phone_number: bool) -> MatchInput:
    """What we send Apollo for a lead row (first/last name, else the contact name)."""
    has_names = bool(lead.first_name and lead.last_name)
    return MatchInput(
        id=lead.apollo_person_id,
        first_name=lead.first_name,
        last_name=lead.last_name,
        name=None if has_names else lead.contact_name,
        email=lead.email,
        linkedin_url=lead.linkedin_url,
        organization_name=lead.company_name,
        domain=_domain(lead.website),
        reveal_phone_number=reveal_phone_number,
    )


_OPEN_LEADS = text(f"""
    SELECT id, apollo_person_id, first_name, last_name, contact_name, email, linkedin_url,
           company_name, website
    FROM leads WHERE team_id = :t AND sector = :sector AND id > :after AND {_OPEN}
    ORDER BY id LIMIT :n
""")
_SET_KEYS = text("""
    UPDATE leads l SET enrichment_key = v.k
    FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS text[])) AS v(id, k)
    WHERE l.team_id = :t AND l.id = v.id AND l.enrichment_key IS DISTINCT FROM v.k
""")
_INSUFFICIENT = text(f"""
    UPDATE leads SET enrichment_status = '{EnrichmentStatus.INSUFFICIENT_DATA}',
        enrichment_error = NULL, updated_at = now()
    WHERE team_id = :t AND id = ANY(:ids)
      AND enrichment_status IS DISTINCT FROM '{EnrichmentStatus.INSUFFICIENT_DATA}'
""")
# One key per statement (see _Run._settle).
_SETTLE = text(f"""
    UPDATE leads SET enrichment_status = :status, enrichment_error = :error,
        updated_at = now()
    WHERE team_id = :t AND enrichment_key = :key AND {_OPEN}
""")
_ENRICH = text(f"""
    UPDATE leads SET enrichment_status = '{EnrichmentStatus.ENRICHED}', enrichment_error = NULL,
        enriched_at = now(), updated_at = now(),
        apollo_person_id = :person_id, apollo_organization_id = :organization_id,
        apollo_data = :raw,
        title = coalesce(title, :title), linkedin_url = coalesce(linkedin_url, :linkedin_url),
        seniority = :seniority, departments = :departments, apollo_email = :apollo_email,
        email_status = :email_status, mobile_phones = :mobile_phones,
        organization_name = :organization_name, organization_website = :organization_website,
        founded_year = :founded_year, employee_count = :employee_count, industry = :industry,
        keywords = :keywords, organization_location = :organization_location,
        annual_revenue = :annual_revenue, technologies = :technologies,
        revenue_tier = :revenue_tier, years_in_business = :years_in_business,
        has_verified_email = :has_verified_email, has_linkedin = :has_linkedin,
        is_owner_or_c_level = :is_owner_or_c_level, is_main_street = :is_main_street,
        is_established = :is_established
    WHERE team_id = :t AND enrichment_key = :key AND {_OPEN}
    RETURNING id
""").bindparams(bindparam("raw", type_=JSONB))

# What a settled cache entry makes of the open leads with its key.
_LEAD_STATUS: Final[dict[CacheStatus, EnrichmentStatus]] = {
    CacheStatus.MATCHED: EnrichmentStatus.ENRICHED,
    CacheStatus.NO_MATCH: EnrichmentStatus.NO_MATCH,
    CacheStatus.QUARANTINED: EnrichmentStatus.QUARANTINED,
    CacheStatus.IN_DOUBT: EnrichmentStatus.IN_DOUBT,
}


def _lead_values(person: ApolloPerson, raw: Any) -> dict[str, Any]:
    org = person.organization
    derived = derive(person, datetime.now(UTC).date())
    location = ", ".join(p for p in (org.city, org.state, org.country) if p) if org else ""
    return {
        "person_id": person.id,
        "organization_id": org.id if org else None,
        "raw": raw,
        "title": person.title,
        "linkedin_url": person.linkedin_url,
        "seniority": person.seniority,
        "departments": list(person.departments),
        "apollo_email": person.email,
        "email_status": person.email_status,
        "mobile_phones": person.mobile_numbers,
        "organization_name": org.name if org else None,
        "organization_website": org.website_url if org else None,
        "founded_year": _int32(org.founded_year) if org else None,
        "employee_count": _int32(org.estimated_num_employees) if org else None,
        "industry": org.industry if org else None,
        "keywords": list(org.keywords) if org else [],
        "organization_location": location or None,
        # Numeric(16, 2): anything larger is not a real revenue.
        "annual_revenue": org.annual_revenue
        if org and org.annual_revenue is not None and abs(org.annual_revenue) < 1e13
        else None,
        "technologies": list(org.technology_names) if org else [],
        **derived.as_dict(),
    }


class _RunGate:
    """The shared limiter, plus what this run must do around every HTTP attempt: mark the
    worker's claims ``sent`` once the request is really about to leave, and count."""

    def __init__(self, run: _Run, limiter: PgRateLimiter) -> None:
        self._run = run
        self._limiter = limiter

    def before_request(self, endpoint: str, people: int) -> None:
        try:
            self._limiter.acquire()
        except RateLimitReached as exc:
            raise RateLimited(
                str(exc), retry_after=exc.retry_after, status_code=None, endpoint=endpoint
            ) from exc
        self._run.mark_sent()

    def after_response(
        self, endpoint: str, status_code: int, quota: QuotaInfo, retry_after: float | None
    ) -> None:
        if status_code == 429:
            # Every process waits as told, not just this worker.
            if retry_after is not None and retry_after > 0:
                self._limiter.pause(retry_after)
            self._run.count(http_429=1)


@dataclass
class _Sending:
    keys: list[str]
    reservation: budget.Reservation
    sent: bool = False  # the request may have left: its people can no longer be released


class ClaimLost(RuntimeError):
    """Another run took over a claim of ours before we sent: we must not send."""


class _Run:
    def __init__(
        self,
        team_id: uuid.UUID,
        run_id: str,
        connection: ApolloConnection,
        options: EnrichOptions,
        engine: Engine,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.team_id = team_id
        self.run_id = run_id
        self.options = options
        self.engine = engine
        self.stats = EnrichStats()
        self._lock = threading.Condition()
        self._reserved = 0  # batches of this run holding a budget reservation
        self._seen: set[str] = set()  # identities this run has planned
        self._local = threading.local()
        self.limiter = PgRateLimiter(
            engine,
            PROVIDER,
            connection.limits,
            max_in_flight=options.max_in_flight,
            max_wait=connection.max_rate_wait,
            sleep=sleep,
        )
        self.client = ApolloClient(
            connection.base_url,
            connection.api_key,
            timeout=connection.timeout,
            gate=_RunGate(self, self.limiter),
            allow_insecure_http=connection.allow_insecure_http,
        )
        # Money at risk stays reserved until a later run can settle a dead run's claims.
        self._reservation_ttl = 2 * options.claim_stale_after
        self.breaker = CircuitBreaker(name="apollo")
        # A 429 says nothing about the request; wait as told (the limiter pauses every
        # worker) for as long as a claim can safely be held.
        self.retry = RetryPolicy(
            max_rate_limit_waits=20,
            max_retry_after=connection.max_rate_wait,
            sleep=sleep,
            on_retry=self._on_retry,
        )

    # -- bookkeeping ---------------------------------------------------------------

    def count(self, **increments: int | Decimal) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def stop(self, reason: StopReason, message: str) -> None:
        with self._lock:
            if self.stats.stopped is None:
                self.stats.stopped = reason
                self.stats.message = message
                logger.warning("enrichment stopping: %s", message)
            self._lock.notify_all()  # workers waiting for budget room

    @property
    def stopped(self) -> bool:
        return self.stats.stopped is not None

    def _on_retry(self, event: RetryEvent) -> None:
        unknown = isinstance(event.error, TransientError) and event.error.outcome_unknown
        self.count(retries=1, possibly_charged_requests=int(unknown))

    def mark_sent(self) -> None:
        self.count(requests=1)
        sending: _Sending | None = getattr(self._local, "sending", None)
        if sending is None:
            return
        with tenant_session(self.team_id, self.engine) as s:
            held = cache.mark_sent(
                s,
                self.team_id,
                sending.keys,
                self.run_id,
                sending.reservation.id,
                self.options.credits_each,
            )
            if held != len(sending.keys):
                raise ClaimLost(f"{len(sending.keys) - held} claims were taken over; not sent")
        sending.sent = True

    # -- preparing leads -----------------------------------------------------------

    def settle_in_doubt(self) -> None:
        """Book requests a dead run left in flight at their worst case; never rebuy them."""
        with tenant_session(self.team_id, self.engine) as s:
            in_doubt = cache.settle_in_doubt(s, self.team_id, self.options.claim_stale_after)
            if not in_doubt:
                return
            by_reservation: dict[uuid.UUID | None, list[cache.InDoubt]] = {}
            for entry in in_doubt:
                by_reservation.setdefault(entry.reservation_id, []).append(entry)
            for reservation_id, entries in by_reservation.items():
                units = sum(e.credits for e in entries)
                spent = self._book(s, reservation_id, IN_DOUBT_OPERATION, units)
                self.count(in_doubt_credits=units, in_doubt_spend=spent)
            keys = [e.identity_key for e in in_doubt]
            self._settle(
                s,
                keys,
                EnrichmentStatus.IN_DOUBT,
                "request in flight when a run stopped; booked at its worst case",
            )
        self.count(in_doubt=len(in_doubt))
        logger.warning("%d people were in flight when a run died: booked as in doubt", len(keys))

    def prepare(self, leads: Sequence[Any]) -> list[list[_Person]]:
        """Mark ineligible leads, key the rest, and plan bulk calls of distinct people."""
        insufficient: list[int] = []
        ids: list[int] = []
        keys: list[str] = []
        people: dict[str, _Person] = {}
        for lead in leads:
            inp = match_input(lead, self.options.reveal_phone_number)
            if match_eligibility(inp) is not None:
                insufficient.append(lead.id)
                continue
            key = inp.identity_key()
            ids.append(lead.id)
            keys.append(key)
            if key not in self._seen:
                people.setdefault(key, _Person(key, inp))
        with tenant_session(self.team_id, self.engine) as s:
            if insufficient:
                s.execute(_INSUFFICIENT, {"t": self.team_id, "ids": insufficient})
            if ids:
                s.execute(_SET_KEYS, {"t": self.team_id, "ids": ids, "keys": keys})
        self._seen.update(people)
        self.count(leads=len(leads), insufficient_data=len(insufficient), identities=len(people))
        return batches_of(list(people.values()))

    # -- one bulk call -------------------------------------------------------------

    def process(self, batch: list[_Person]) -> list[_Person]:
        """Buy ``batch`` (or serve it from cache); returns the people to try again later
        (another run holds them)."""
        if self.stopped:
            return []
        claimed, busy = self._claim(batch)
        if not claimed:
            return busy
        sending = self._reserve(claimed)
        if sending is None:
            return []
        try:
            return busy + self._buy(claimed, sending)
        except Exception:
            self._abandon(claimed, sending)
            raise
        finally:
            self._unreserve()

    def _buy(self, claimed: list[_Person], sending: _Sending) -> list[_Person]:
        """Call Apollo for ``claimed`` and record the outcome; returns the people another
        run took over before we sent."""
        self._local.sending = sending
        try:
            result = self.retry.call(
                lambda: self.client.bulk_match([p.input for p in claimed]), breaker=self.breaker
            )
        except ClaimLost:
            # We were slower than the staleness limit: give the money back and try later.
            self._give_back(sending)
            return claimed
        except MalformedResponse as exc:
            self._record_unusable(claimed, sending.reservation, exc)
            return []
        except RequestRejected as exc:
            self._record_rejected(claimed, sending.reservation, exc)
            return []
        except (RateLimited, CircuitOpen, TransientError, PermanentError) as exc:
            self._give_up(claimed, sending, exc)
            return []
        finally:
            self._local.sending = None
        crashpoint("enrich.after_response")
        self._record(claimed, sending.reservation, result)
        crashpoint("enrich.after_commit")
        return []

    def _abandon(self, claimed: list[_Person], sending: _Sending) -> None:
        """An unexpected error (our side): free what was certainly not billed, and settle
        what may have been at once rather than leaving it for a later run."""
        logger.exception("enrichment batch of %d people failed", len(claimed))
        try:
            if not sending.sent:
                self._give_back(sending)
                return
            units = len(claimed) * self.options.credits_each
            reason = "error while recording Apollo's answer; booked at its worst case"
            with tenant_session(self.team_id, self.engine) as s:
                for person in claimed:
                    self._answer(s, person.key, CacheStatus.IN_DOUBT, reason=reason)
                spent = self._book(s, sending.reservation.id, IN_DOUBT_OPERATION, units)
            self.count(in_doubt=len(claimed), in_doubt_credits=units, in_doubt_spend=spent)
        except Exception:
            logger.exception("could not clean up after the failed batch")

    def _claim(self, batch: list[_Person]) -> tuple[list[_Person], list[_Person]]:
        claimed: list[_Person] = []
        busy: list[_Person] = []
        hits = 0
        with tenant_session(self.team_id, self.engine) as s:
            for person in batch:
                got = cache.claim(
                    s,
                    self.team_id,
                    person.key,
                    self.run_id,
                    self.options.cache_window_days,
                    stale_after=self.options.claim_stale_after,
                )
                if got.outcome is cache.ClaimOutcome.CLAIMED:
                    claimed.append(person)
                elif got.outcome is cache.ClaimOutcome.BUSY:
                    busy.append(person)
                else:
                    hits += 1
                    self._apply_cached(s, person.key, got)
        self.count(cache_hits=hits)
        return claimed, busy

    def _reserve(self, claimed: list[_Person]) -> _Sending | None:
        """Reserve the worst case of buying ``claimed``; None (claims released, run
        stopped) when the budget has no room."""
        amount = len(claimed) * self.options.credits_each * self.options.price_per_credit
        keys = [p.key for p in claimed]
        try:
            reservation = self._reserve_amount(amount)
        except BaseException:
            self._release(keys)
            raise
        if reservation is not None:
            return _Sending(keys, reservation)
        self._release(keys)
        with tenant_session(self.team_id, self.engine) as s:
            limit = budget.room(s, self.team_id, CostCategory.ENRICHMENT).limit
        self.stop(
            StopReason.BUDGET,
            f"{limit or 'the budget'} reached; the next call could cost up to ${amount}",
        )
        return None

    def _reserve_amount(self, amount: Decimal) -> budget.Reservation | None:
        for attempt in range(2):
            reservation = budget.reserve(
                self.team_id,
                amount,
                category=CostCategory.ENRICHMENT,
                provider=PROVIDER,
                ttl=self._reservation_ttl,
                engine=self.engine,
            )
            if reservation is not None:
                with self._lock:
                    self._reserved += 1
                return reservation
            if attempt == 0:
                # Our own calls in flight reserved their worst case; once they settle at
                # what they really cost there may be room again.
                with self._lock:
                    self._lock.wait_for(
                        lambda: self._reserved == 0 or self.stopped, _OWN_CALLS_SETTLE_WAIT
                    )
        return None

    def _unreserve(self) -> None:
        with self._lock:
            self._reserved -= 1
            self._lock.notify_all()

    def _release(self, keys: list[str]) -> None:
        with tenant_session(self.team_id, self.engine) as s:
            cache.release(s, self.team_id, keys, self.run_id)

    def _give_back(self, sending: _Sending) -> None:
        """Nothing was billed: release the money and the claims."""
        budget.release(sending.reservation, engine=self.engine)
        self._release(sending.keys)

    def _give_up(self, claimed: list[_Person], sending: _Sending, exc: Exception) -> None:
        """Apollo failed or refused us; nothing was billed as far as we know."""
        self._give_back(sending)
        if isinstance(exc, TransientError):
            # Apollo kept failing for these people: they are retried by the next run.
            self.count(failed=len(claimed), possibly_charged_requests=int(exc.outcome_unknown))
            with tenant_session(self.team_id, self.engine) as s:
                self._settle(s, sending.keys, EnrichmentStatus.ENRICH_FAILED, str(exc))
            if self.breaker.state is not BreakerState.CLOSED:
                self.stop(
                    StopReason.PROVIDER_DOWN,
                    f"Apollo is failing ({exc}); circuit opened after "
                    f"{self.breaker.failure_threshold} consecutive failures",
                )
        elif isinstance(exc, CircuitOpen):
            self.stop(StopReason.PROVIDER_DOWN, f"Apollo is failing: {exc}")
        elif isinstance(exc, RateLimited):
            self.stop(
                StopReason.RATE_QUOTA,
                f"Apollo rate quota spent: next request allowed in {exc.retry_after:.0f}s",
            )
        elif isinstance(exc, AccessDenied):
            self.stop(StopReason.REFUSED, f"Apollo refused our API key or account: {exc}")
        else:
            self.stop(
                StopReason.MISCONFIGURED,
                f"Apollo answered unexpectedly ({exc}); check the Apollo base URL, "
                "the plan and the account",
            )

    def _book(
        self, s: Session, reservation_id: uuid.UUID | None, operation: str, credits: int
    ) -> Decimal:
        """Replace a reservation by the ledger row of ``credits`` (none for 0 credits)."""
        entry = budget.LedgerEntry(
            category=CostCategory.ENRICHMENT,
            provider=PROVIDER,
            operation=operation,
            units=credits,
            unit_cost=self.options.price_per_credit,
            reference=self.options.reference,
        )
        return budget.commit_by_id(s, self.team_id, reservation_id, [entry] if credits else [])

    def _record(
        self, claimed: list[_Person], reservation: budget.Reservation, result: BulkResult
    ) -> None:
        """The answer, the ledger and the leads, in one transaction."""
        credits = result.credits_consumed
        if credits is None:
            credits = sum(credits_for(r.person) for r in result.results)
        counts = {"matched": 0, "no_match": 0, "quarantined": 0, "enriched_leads": 0}
        with tenant_session(self.team_id, self.engine) as s:
            for r in result.results:
                key = claimed[r.index].key
                if r.status is MatchStatus.MATCHED and r.person is not None:
                    counts["enriched_leads"] += self._answer(
                        s, key, CacheStatus.MATCHED, r.person, r.raw
                    )
                    counts["matched"] += 1
                elif r.status is MatchStatus.NO_MATCH:
                    self._answer(s, key, CacheStatus.NO_MATCH)
                    counts["no_match"] += 1
                else:
                    reason = r.reason or "unusable answer"
                    self._answer(s, key, CacheStatus.QUARANTINED, reason=reason)
                    counts["quarantined"] += 1
            spent = self._book(s, reservation.id, OPERATION, credits)
        self.count(calls=1, credits=credits, spend=spent, **counts)

    def _record_unusable(
        self, claimed: list[_Person], reservation: budget.Reservation, exc: MalformedResponse
    ) -> None:
        """Apollo answered 200 with something we cannot map to people: it may have billed."""
        credits = exc.credits_consumed
        if credits is None:
            credits = len(claimed) * self.options.credits_each
        spent = self._quarantine(claimed, reservation, str(exc), credits)
        self.count(calls=1, quarantined=len(claimed), credits=credits, spend=spent)

    def _record_rejected(
        self, claimed: list[_Person], reservation: budget.Reservation, exc: RequestRejected
    ) -> None:
        """Apollo refused this call's payload and billed nothing: its people are
        quarantined with Apollo's reason, free, and not asked for again automatically."""
        self._quarantine(claimed, reservation, f"Apollo rejected the request: {exc}", 0)
        self.count(rejected_calls=1, quarantined=len(claimed))

    def _quarantine(
        self, claimed: list[_Person], reservation: budget.Reservation, reason: str, credits: int
    ) -> Decimal:
        """Quarantine ``claimed`` with ``reason`` and book ``credits`` (no ledger row for 0)
        in place of the reservation, in one transaction; returns what was booked."""
        with tenant_session(self.team_id, self.engine) as s:
            for person in claimed:
                self._answer(s, person.key, CacheStatus.QUARANTINED, reason=reason)
            return self._book(s, reservation.id, OPERATION, credits)

    def _answer(
        self,
        s: Session,
        key: str,
        status: CacheStatus,
        person: ApolloPerson | None = None,
        raw: Any = None,
        reason: str | None = None,
    ) -> int:
        """Store this run's answer for ``key`` in the cache and write it to the open leads
        with that key; returns the number of leads enriched."""
        cache.store(
            s,
            self.team_id,
            key,
            status,
            person.id if person else None,
            raw if person else ({"reason": reason} if reason else None),
            credits_for(person),
            self.options.cache_window_days,
            run_id=self.run_id,
        )
        if person is not None:
            return self._enrich_leads(s, key, person, raw)
        self._settle(s, [key], _LEAD_STATUS[status], reason)
        return 0

    def _settle(
        self, s: Session, keys: list[str], status: EnrichmentStatus, error: str | None
    ) -> None:
        """Give the open leads with these keys a status without a match.

        Key by key in key order: one UPDATE over many keys would lock leads in whatever
        order its plan visits them, while a run recording an answer locks the leads of
        one key after another in key order."""
        params = [
            {"t": self.team_id, "key": key, "status": status, "error": error}
            for key in sorted(keys)
        ]
        if params:
            s.execute(_SETTLE, params)

    def _enrich_leads(self, s: Session, key: str, person: ApolloPerson, raw: Any) -> int:
        params = {"t": self.team_id, "key": key, **_lead_values(person, raw)}
        lead_ids = s.scalars(_ENRICH, params).all()
        # The profile's bonus adds to the lead's score (replies may have moved it already).
        score_enrichment(s, self.team_id, lead_ids, params["score"])
        return len(lead_ids)

    def _apply_cached(self, s: Session, key: str, got: cache.ClaimResult) -> None:
        if got.status is CacheStatus.MATCHED and got.result is not None:
            person = ApolloPerson.model_validate(got.result)
            self.count(enriched_leads=self._enrich_leads(s, key, person, got.result))
        elif got.status in (CacheStatus.NO_MATCH, CacheStatus.IN_DOUBT):
            self._settle(s, [key], _LEAD_STATUS[got.status], None)
        else:  # quarantined, or an entry we cannot read
            reason = (got.result or {}).get("reason") or "unreadable cache entry"
            self._settle(s, [key], EnrichmentStatus.QUARANTINED, reason)

    def mark_busy(self, people: list[_Person]) -> None:
        with tenant_session(self.team_id, self.engine) as s:
            self._settle(
                s,
                [p.key for p in people],
                EnrichmentStatus.BUSY,
                "another run was still buying this person; retried next run",
            )
        self.count(busy=len(people))


def batches_of(people: list[_Person]) -> list[list[_Person]]:
    """Bulk calls of up to 10, in identity-key order: every transaction of every run then
    locks cache rows in the same order, so concurrent runs cannot deadlock."""
    ordered = sorted(people, key=lambda p: p.key)
    return [ordered[i : i + MAX_BULK] for i in range(0, len(ordered), MAX_BULK)]


_INT32 = 2**31 - 1


def _int32(value: int | None) -> int | None:
    return value if value is not None and -_INT32 <= value <= _INT32 else None


def _open_leads(
    team_id: uuid.UUID, sector: str, size: int, engine: Engine
) -> Iterator[Sequence[Any]]:
    after = 0
    while True:
        with tenant_session(team_id, engine) as s:
            rows = s.execute(
                _OPEN_LEADS, {"t": team_id, "sector": sector, "after": after, "n": size}
            ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _buy_all(pool: ThreadPoolExecutor, run: _Run, batches: list[list[_Person]]) -> list[_Person]:
    """Run the batches on the pool; returns the people to try again later."""
    waiting: list[_Person] = []
    for future in as_completed([pool.submit(run.process, b) for b in batches]):
        waiting.extend(future.result())
    return waiting


def enrich_sector(
    team_id: uuid.UUID,
    sector: str,
    *,
    connection: ApolloConnection,
    options: EnrichOptions,
    run_id: str,
    engine: Engine | None = None,
    log: Callable[[str], None] = logger.info,
    sleep: Callable[[float], None] = time.sleep,
) -> EnrichStats:
    """Enrich the open leads of ``team_id`` in ``sector``; see the module docstring."""
    engine = engine or app_engine()
    run = _Run(team_id, run_id, connection, options, engine, sleep)
    try:
        run.settle_in_doubt()
        waiting: list[_Person] = []
        with ThreadPoolExecutor(options.max_in_flight, thread_name_prefix="enrich") as pool:
            for leads in _open_leads(team_id, sector, options.chunk_leads, engine):
                if run.stopped:
                    break
                waiting += _buy_all(pool, run, run.prepare(leads))
                stats = run.stats
                log(
                    f"{stats.leads} leads: {stats.matched} matched, {stats.cache_hits} from "
                    f"cache, {stats.requests} requests, ${stats.spend} spent"
                )
            deadline = time.monotonic() + options.busy_wait
            while waiting and not run.stopped and time.monotonic() < deadline:
                sleep(1.0)
                waiting = _buy_all(pool, run, batches_of(waiting))
        if waiting:
            run.mark_busy(waiting)
    finally:
        run.client.close()
    return run.stats
