"""A fake Apollo.io People Enrichment server speaking the real wire API.

Endpoints (also reachable without the ``/api`` prefix, as on the real host):

* ``POST /api/v1/people/match``       -> ``{"person": {...} | null, "credits_consumed": n}``
* ``POST /api/v1/people/bulk_match``  -> ``{"matches": [...], "credits_consumed": n, ...}``
* ``GET  /api/v1/auth/health``        -> ``{"healthy": true, "is_logged_in": bool}``

Everything a response contains is derived from a hash of the request's identifiers,
so two sandboxes (or two test runs) answer the same input identically. Phone numbers
are returned synchronously when ``reveal_phone_number`` is set; the real API delivers
them later to a ``webhook_url``, which this project does not use.

Only the standard library is used so the sandbox starts in milliseconds inside tests
and under ``make dev`` without pulling in the web stack.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import math
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "BULK_MATCH_PATH",
    "CREDITS_PER_MATCH",
    "CREDITS_PER_MOBILE",
    "DEFAULT_RATE_LIMIT_PER_MINUTE",
    "FAULT_KINDS",
    "HEALTH_PATH",
    "MATCH_PATH",
    "MAX_BULK_DETAILS",
    "CountersSnapshot",
    "SandboxApollo",
    "SandboxCounters",
    "credits_for",
    "lookup_person",
    "main",
]

from outreach_core.sandbox.http_server import LoopbackSandbox, SandboxServer, serve_until_stopped

logger = logging.getLogger(__name__)

MATCH_PATH: Final = "/api/v1/people/match"
BULK_MATCH_PATH: Final = "/api/v1/people/bulk_match"
HEALTH_PATH: Final = "/api/v1/auth/health"
MAX_BULK_DETAILS: Final = 10
MAX_BODY_BYTES: Final = 1_000_000
# What the sandbox allows a minute when served for development (`outreach dev`, the demo,
# the CLI below, the benchmark): well above the free plan, so runs are quick, but a limit
# all the same, so pacing and 429s are exercised. In-process test sandboxes have none.
DEFAULT_RATE_LIMIT_PER_MINUTE: Final = 600

# Pricing model assumed for the project (see the ledger): a match costs a credit, a
# revealed mobile number costs 8 more, a miss is free.
CREDITS_PER_MATCH: Final = 1
CREDITS_PER_MOBILE: Final = 8

FAULT_KINDS: Final = (
    "pass",  # no fault: answer normally, so the next fault hits a later request
    "<3-digit status>",
    "429[:secs]",
    "timeout[:secs]",
    "reset",
    "html",
    "redirect",
    "malformed[:index]",
)

_IDENTIFIER_FIELDS: Final = (
    "id",
    "first_name",
    "last_name",
    "name",
    "email",
    "hashed_email",
    "linkedin_url",
    "organization_name",
    "domain",
)
_FREEMAIL: Final = frozenset(
    {
        "gmail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "aol.com",
        "icloud.com",
        "comcast.net",
        "msn.com",
    }
)


# --------------------------------------------------------------------------- data


class _Draw:
    """Deterministic pseudo-random draws keyed by a request identity.

    ``random.Random`` only promises stable ``random()`` output across Python versions,
    so every draw hashes (salt, key) itself instead.
    """

    def __init__(self, key: str) -> None:
        self._key = key

    def unit(self, salt: str) -> float:
        digest = hashlib.sha256(f"{salt}\x00{self._key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def pick(self, salt: str, items: Sequence[Any]) -> Any:
        return items[int(self.unit(salt) * len(items))]

    def between(self, salt: str, low: int, high: int) -> int:
        return low + int(self.unit(salt) * (high - low + 1))

    def weighted(self, salt: str, table: Sequence[tuple[Any, float]]) -> Any:
        point = self.unit(salt) * sum(weight for _, weight in table)
        for value, weight in table:
            point -= weight
            if point < 0:
                return value
        return table[-1][0]

    def hex_id(self, salt: str) -> str:
        # Apollo ids are 24-hex Mongo ObjectIds.
        return hashlib.sha256(f"{salt}\x00{self._key}".encode()).hexdigest()[:24]


_FIRST_NAMES: Final = (
    "James",
    "Maria",
    "Robert",
    "Linda",
    "Michael",
    "Patricia",
    "David",
    "Jennifer",
    "Carlos",
    "Aisha",
    "Wei",
    "Priya",
    "Thomas",
    "Sarah",
    "Daniel",
    "Nancy",
    "Kevin",
    "Olga",
    "Marcus",
    "Emily",
)
_LAST_NAMES: Final = (
    "Smith",
    "Garcia",
    "Johnson",
    "Nguyen",
    "Williams",
    "Patel",
    "Brown",
    "Kim",
    "Jones",
    "Lopez",
    "Miller",
    "Okafor",
    "Davis",
    "Chen",
    "Wilson",
    "Martinez",
    "Anderson",
    "Hughes",
    "Rossi",
    "Baker",
)
_CITIES: Final = (
    ("Austin", "Texas"),
    ("Denver", "Colorado"),
    ("Columbus", "Ohio"),
    ("Tampa", "Florida"),
    ("Raleigh", "North Carolina"),
    ("Boise", "Idaho"),
    ("Fresno", "California"),
    ("Spokane", "Washington"),
    ("Omaha", "Nebraska"),
    ("Albany", "New York"),
)
_INDUSTRIES: Final = (
    ("construction", ("general contracting", "remodeling", "commercial construction")),
    ("restaurants", ("catering", "family dining", "takeout")),
    ("health, wellness & fitness", ("physical therapy", "chiropractic", "wellness")),
    ("automotive", ("auto repair", "collision", "fleet service")),
    ("real estate", ("property management", "residential sales", "leasing")),
    ("accounting", ("bookkeeping", "tax preparation", "payroll")),
    ("retail", ("ecommerce", "boutique", "specialty retail")),
    ("legal services", ("estate planning", "family law", "litigation")),
)
_TECHNOLOGIES: Final = (
    "Google Analytics",
    "WordPress.org",
    "Mailchimp",
    "Shopify",
    "QuickBooks",
    "Gmail",
    "Microsoft Office 365",
    "Square",
    "Stripe",
    "HubSpot",
    "Facebook Widget",
    "Google Tag Manager",
)
_SENIORITY: Final = (
    ("owner", 0.2),
    ("c_suite", 0.2),
    ("vp", 0.15),
    ("director", 0.2),
    ("manager", 0.25),
)
_TITLES: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "owner": (
        ("Owner", ("c_suite",)),
        ("Owner & Operator", ("c_suite",)),
        ("Founder & Owner", ("c_suite",)),
    ),
    "c_suite": (
        ("CEO", ("c_suite",)),
        ("President", ("c_suite",)),
        ("Chief Financial Officer", ("c_suite", "master_finance")),
        ("COO", ("c_suite", "master_operations")),
    ),
    "vp": (
        ("VP of Sales", ("master_sales",)),
        ("Vice President, Operations", ("master_operations",)),
        ("VP Marketing", ("master_marketing",)),
    ),
    "director": (
        ("Director of Operations", ("master_operations",)),
        ("Sales Director", ("master_sales",)),
        ("IT Director", ("master_information_technology",)),
    ),
    "manager": (
        ("Office Manager", ("master_operations",)),
        ("Marketing Manager", ("master_marketing",)),
        ("Accounting Manager", ("master_finance",)),
    ),
}
# (tier name, low, high) in USD; None stands for "revenue unknown".
_REVENUE_TIERS: Final = (
    ((None, 0, 0), 0.10),
    (("startup", 50_000, 499_000), 0.15),
    (("main_street", 500_000, 2_499_000), 0.25),
    (("growth", 2_500_000, 9_999_000), 0.20),
    (("established", 10_000_000, 49_999_000), 0.15),
    (("enterprise", 50_000_000, 900_000_000), 0.15),
)


def _clean(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _identity(details: Mapping[str, Any]) -> tuple[str, dict[str, str]] | None:
    """Return (identity key, cleaned identifiers) or None when Apollo could not match."""
    ids = {k: v for k in _IDENTIFIER_FIELDS if (v := _clean(details.get(k))) is not None}
    if "name" in ids and not ({"first_name", "last_name"} <= ids.keys()):
        parts = ids["name"].split()
        if len(parts) >= 2:
            ids.setdefault("first_name", parts[0])
            ids.setdefault("last_name", " ".join(parts[1:]))
    if "id" in ids:
        return "id:" + ids["id"].lower(), ids
    if "linkedin_url" in ids:
        slug = ids["linkedin_url"].lower().rstrip("/").rsplit("/", 1)[-1]
        return "li:" + slug, ids
    if "email" in ids and "@" in ids["email"]:
        return "em:" + ids["email"].lower(), ids
    if "hashed_email" in ids:
        return "he:" + ids["hashed_email"].lower(), ids
    company = ids.get("domain") or ids.get("organization_name")
    if "first_name" in ids and "last_name" in ids and company:
        key = "|".join((ids["first_name"], ids["last_name"], company)).lower()
        return "nm:" + key, ids
    return None


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum()) or "company"


def _printed(amount: int) -> str:
    if amount >= 1_000_000_000:
        return f"{amount / 1_000_000_000:.1f}B"
    if amount >= 1_000_000:
        return f"{amount / 1_000_000:.1f}M"
    return f"{amount / 1_000:.0f}K"


def lookup_person(
    details: Mapping[str, Any], *, reveal_phone_number: bool = False, match_rate: float = 0.8
) -> dict[str, Any] | None:
    """The sandbox's "database": the person Apollo would return for ``details``, or None.

    Pure and deterministic, so tests can pick inputs with known outcomes.
    """
    found = _identity(details)
    if found is None:
        return None
    key, ids = found
    draw = _Draw(key)
    if draw.unit("match") >= match_rate:
        return None

    first = ids.get("first_name") or draw.pick("first", _FIRST_NAMES)
    last = ids.get("last_name") or draw.pick("last", _LAST_NAMES)
    email_domain = ids["email"].rsplit("@", 1)[-1].lower() if "email" in ids else None
    domain = ids.get("domain") or (email_domain if email_domain not in _FREEMAIL else None) or None
    org_name = ids.get("organization_name")
    industry, keywords = draw.pick("industry", _INDUSTRIES)
    if org_name is None:
        stem = domain.split(".")[0].capitalize() if domain else draw.pick("orgname", _LAST_NAMES)
        org_name = f"{stem} {industry.split()[0].capitalize()} Co"
    if domain is None:
        domain = _slug(org_name) + ".com"
    domain = domain.lower().removeprefix("http://").removeprefix("https://").removeprefix("www.")

    seniority = draw.weighted("seniority", _SENIORITY)
    title, departments = draw.pick("title", _TITLES[seniority])
    tier, low, high = draw.weighted("revenue", _REVENUE_TIERS)
    revenue = (
        None if tier is None else draw.between("revenue_amount", low // 1000, high // 1000) * 1000
    )
    employees = max(1, (revenue or draw.between("employees_fallback", 1, 40) * 150_000) // 150_000)
    founded = None if draw.unit("founded_known") < 0.05 else draw.between("founded", 1955, 2024)
    city, state = draw.pick("city", _CITIES)

    if "email" in ids:
        email: str | None = ids["email"].lower()
        email_status = draw.weighted("given_email", (("verified", 0.8), ("guessed", 0.2)))
    else:
        email_status = draw.weighted(
            "email_status", (("verified", 0.65), ("guessed", 0.2), ("unavailable", 0.15))
        )
        email = None if email_status == "unavailable" else f"{first}.{last}@{domain}".lower()

    if "linkedin_url" in ids:
        linkedin: str | None = ids["linkedin_url"]
    elif draw.unit("has_linkedin") < 0.85:
        linkedin = (
            f"http://www.linkedin.com/in/{_slug(first)}-{_slug(last)}-{draw.hex_id('li')[:6]}"
        )
    else:
        linkedin = None

    phones: list[dict[str, Any]] = []
    if reveal_phone_number and draw.unit("has_mobile") < 0.5:
        # 555-01xx is reserved for fiction, so nothing generated here can reach a real phone.
        area = draw.pick("area", ("512", "303", "614", "813", "919", "208"))
        line = f"01{draw.between('line', 0, 99):02d}"
        phones.append(
            {
                "raw_number": f"+1 {area}-555-{line}",
                "sanitized_number": f"+1{area}555{line}",
                "type": "mobile",
                "position": 0,
                "status": "no_status",
            }
        )

    organization = {
        "id": draw.hex_id("org"),
        "name": org_name,
        "website_url": f"http://www.{domain}",
        "primary_domain": domain,
        "founded_year": founded,
        "estimated_num_employees": employees,
        "industry": industry,
        "keywords": list(keywords),
        "city": city,
        "state": state,
        "country": "United States",
        "annual_revenue": revenue,
        "annual_revenue_printed": None if revenue is None else _printed(revenue),
        "technology_names": sorted({draw.pick(f"tech{i}", _TECHNOLOGIES) for i in range(4)}),
    }
    return {
        "id": draw.hex_id("person"),
        "first_name": first,
        "last_name": last,
        "name": f"{first} {last}",
        "title": title,
        "headline": f"{title} at {org_name}",
        "seniority": seniority,
        "departments": list(departments),
        "linkedin_url": linkedin,
        "email": email,
        "email_status": email_status,
        "photo_url": None,
        "twitter_url": None,
        "city": city,
        "state": state,
        "country": "United States",
        "phone_numbers": phones,
        "organization_id": organization["id"],
        "organization": organization,
    }


def credits_for(person: Mapping[str, Any] | None) -> int:
    """Credits the sandbox charges for one returned person (0 for a miss)."""
    if person is None:
        return 0
    phones = person.get("phone_numbers") or []
    has_mobile = any(isinstance(p, Mapping) and p.get("type") == "mobile" for p in phones)
    return CREDITS_PER_MATCH + (CREDITS_PER_MOBILE if has_mobile else 0)


# A broken element as a buggy upstream might emit it: wrong types, no usable id.
_MALFORMED_PERSON: Final = {
    "id": 404,
    "first_name": ["not", "a", "string"],
    "organization": "ERR_SERIALIZE",
    "phone_numbers": "n/a",
}


# ----------------------------------------------------------------------- counters


@dataclass(frozen=True)
class CountersSnapshot:
    total: int
    by_endpoint: dict[str, int]
    paid_matches: int
    credits_charged: int
    rate_limited: int
    unauthorized: int
    faults_injected: int


class SandboxCounters:
    """Request counters, updated from handler threads, read from tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._total = 0
        self._by_endpoint: dict[str, int] = {}
        self._paid_matches = 0
        self._credits = 0
        self._charged_requests = 0
        self._paid_people: Counter[str] = Counter()
        self._rate_limited = 0
        self._unauthorized = 0
        self._faults = 0

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _request(self, endpoint: str) -> None:
        with self._lock:
            self._total += 1
            self._by_endpoint[endpoint] = self._by_endpoint.get(endpoint, 0) + 1

    def _charge(self, matches: int, credits: int, person_ids: Sequence[str] = ()) -> None:
        with self._lock:
            self._paid_matches += matches
            self._credits += credits
            self._charged_requests += 1 if credits else 0
            self._paid_people.update(person_ids)

    def _bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    @property
    def by_endpoint(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_endpoint)

    def endpoint(self, path: str) -> int:
        with self._lock:
            return self._by_endpoint.get(path, 0)

    @property
    def paid_matches(self) -> int:
        with self._lock:
            return self._paid_matches

    @property
    def credits_charged(self) -> int:
        with self._lock:
            return self._credits

    @property
    def charged_requests(self) -> int:
        """Requests that cost at least one credit."""
        with self._lock:
            return self._charged_requests

    @property
    def duplicate_paid_matches(self) -> int:
        """Matches paid for a person this account had already paid for."""
        with self._lock:
            return sum(n - 1 for n in self._paid_people.values())

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return self._rate_limited

    @property
    def unauthorized(self) -> int:
        with self._lock:
            return self._unauthorized

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return self._faults

    def snapshot(self) -> CountersSnapshot:
        with self._lock:
            return CountersSnapshot(
                self._total,
                dict(self._by_endpoint),
                self._paid_matches,
                self._credits,
                self._rate_limited,
                self._unauthorized,
                self._faults,
            )

    def __repr__(self) -> str:
        return f"SandboxCounters({self.snapshot()})"


# ------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class _Fault:
    kind: str
    arg: float | None = None


def _parse_fault(spec: str) -> _Fault:
    kind, _, arg = spec.strip().lower().partition(":")
    if kind.isdigit() and len(kind) == 3:
        return _Fault(kind, float(arg) if arg else None)
    if kind in {"timeout", "malformed"}:
        return _Fault(kind, float(arg) if arg else None)
    if kind in {"pass", "reset", "html", "redirect"} and not arg:
        return _Fault(kind)
    raise ValueError(f"unknown fault {spec!r}; expected one of {', '.join(FAULT_KINDS)}")


# ------------------------------------------------------------------------- server


class _Reply(Exception):
    """Short-circuits request handling with a JSON error response."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive the way the real API does, which is what makes a
    # mid-pool connection reset a realistic fault.
    protocol_version = "HTTP/1.1"
    server_version = "ApolloSandbox/1.0"
    server: SandboxServer

    def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
        self.server.sandbox._handle(self, "POST")

    def do_GET(self) -> None:  # noqa: N802
        self.server.sandbox._handle(self, "GET")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request lines only (never headers, which carry the key), and not to stderr.
        logger.debug("apollo sandbox: " + format, *args)


class SandboxApollo(LoopbackSandbox):
    """Fake Apollo server on 127.0.0.1 with deterministic data and scripted faults.

    Use as a context manager (or ``start()``/``stop()``). Settings can be changed while
    it runs; faults queued with ``inject()`` are consumed one per authenticated,
    non-rate-limited request, in order.
    """

    handler_class = _Handler
    thread_name = "apollo-sandbox"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rate_limit_per_minute: int | None = None,
        api_keys: Iterable[str] | None = None,
        match_rate: float = 0.8,
        faults: Iterable[str] = (),
        redirect_to: str = "http://apollo-mirror.invalid",
        timeout_fault_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.rate_limit_per_minute = rate_limit_per_minute
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.match_rate = match_rate
        self.redirect_to = redirect_to.rstrip("/")
        self.timeout_fault_seconds = timeout_fault_seconds
        self.clock = clock
        self.requests = SandboxCounters()
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._windows: dict[str, tuple[int, int]] = {}  # key digest -> (window, used)
        self._init_server_state()
        self.inject(*faults)

    # -- lifecycle ---------------------------------------------------------------

    # -- control -----------------------------------------------------------------

    def inject(self, *faults: str) -> None:
        """Queue faults; each applies to one request. See ``FAULT_KINDS``: e.g.
        ``inject("pass", "422")`` answers the next request normally and the one after it
        with a 422."""
        parsed = [_parse_fault(spec) for spec in faults]
        with self._lock:
            self._faults.extend(parsed)

    @property
    def faults_pending(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Zero the counters, drop queued faults and rate-limit windows; keep settings."""
        with self._lock:
            self._faults.clear()
            self._windows.clear()
        self.requests.reset()

    def lookup(
        self, details: Mapping[str, Any], *, reveal_phone_number: bool = False
    ) -> dict[str, Any] | None:
        """What this sandbox would answer for ``details`` (no request, no charge)."""
        return lookup_person(
            details, reveal_phone_number=reveal_phone_number, match_rate=self.match_rate
        )

    # -- request handling --------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        split = urlsplit(h.path)
        endpoint = split.path.rstrip("/")
        if endpoint.startswith("/v1/"):
            endpoint = "/api" + endpoint
        self.requests._request(endpoint)
        try:
            raw = self._read_body(h)
            if self.latency > 0:
                self._stopping.wait(self.latency)
            status, body, headers = self._route(h, method, endpoint, split.query, raw)
        except _Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        except _Abort:
            return
        self._send_json(h, status, body, headers)

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            h.close_connection = True  # the unread body would corrupt the next request
            raise _Reply(413, {"error": "request body too large"})
        return h.rfile.read(length) if length > 0 else b""

    def _route(
        self, h: _Handler, method: str, endpoint: str, query: str, raw: bytes
    ) -> tuple[int, Mapping[str, Any], dict[str, str]]:
        api_key = (h.headers.get("X-Api-Key") or "").strip()
        if endpoint == HEALTH_PATH and method == "GET":
            return 200, {"healthy": True, "is_logged_in": self._key_ok(api_key)}, {}
        if endpoint not in (MATCH_PATH, BULK_MATCH_PATH):
            raise _Reply(404, {"error": f"no route for {method} {endpoint}"})
        if method != "POST":
            raise _Reply(405, {"error": "method not allowed"}, {"Allow": "POST"})

        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = _INVALID
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        # Apollo stopped accepting keys in bodies/query strings; keys there leak into logs.
        if (isinstance(body, dict) and "api_key" in body) or "api_key" in params:
            raise _Reply(
                422,
                {
                    "error": "api_key must be sent in the X-Api-Key header, "
                    "not in the request body or query string"
                },
            )
        if not self._key_ok(api_key):
            self.requests._bump("_unauthorized")
            raise _Reply(401, {"error": "Invalid access credentials."})

        rate_headers = self._take_rate_slot(api_key)
        fault = self._next_fault()
        if fault is not None and fault.kind == "pass":
            fault = None
        if fault is not None:
            self.requests._bump("_faults")
            self._apply_fault(h, fault, endpoint)  # raises unless the fault alters the body

        if body is _INVALID or (body is not None and not isinstance(body, dict)):
            raise _Reply(422, {"error": "request body must be a JSON object"}, rate_headers)
        payload: dict[str, Any] = {**params, **(body or {})}
        reveal = str(payload.get("reveal_phone_number", "")).lower() in {"true", "1"}
        malformed_at = None
        if fault is not None and fault.kind == "malformed":
            malformed_at = -1 if fault.arg is None else int(fault.arg)

        if endpoint == MATCH_PATH:
            person = self.lookup(payload, reveal_phone_number=reveal)
            credits = credits_for(person)
            if malformed_at is not None:
                person = dict(_MALFORMED_PERSON)
                credits = credits or CREDITS_PER_MATCH
            paid_ids = [person["id"]] if person is not None and malformed_at is None else []
            self.requests._charge(1 if credits else 0, credits, paid_ids)
            return 200, {"person": person, "credits_consumed": credits}, rate_headers

        details = payload.get("details")
        if not isinstance(details, list) or not details:
            raise _Reply(422, {"error": "details must be a non-empty array"}, rate_headers)
        if len(details) > MAX_BULK_DETAILS:
            raise _Reply(
                422, {"error": f"details accepts at most {MAX_BULK_DETAILS} people"}, rate_headers
            )
        for i, item in enumerate(details):
            if not isinstance(item, dict):
                raise _Reply(422, {"error": f"details[{i}] must be an object"}, rate_headers)
        matches: list[Any] = [self.lookup(d, reveal_phone_number=reveal) for d in details]
        credits = sum(credits_for(m) for m in matches)
        paid = sum(1 for m in matches if m is not None)
        paid_ids = [m["id"] for m in matches if m is not None]
        if malformed_at is not None:
            target = malformed_at
            if target < 0:  # default: corrupt the first element that matched
                target = next((i for i, m in enumerate(matches) if m is not None), 0)
            if 0 <= target < len(matches):
                if matches[target] is None:  # the broken element was still billed upstream
                    paid += 1
                    credits += CREDITS_PER_MATCH
                matches[target] = dict(_MALFORMED_PERSON)
        self.requests._charge(paid, credits, paid_ids)
        return (
            200,
            {
                "status": "success",
                "error_code": None,
                "error_message": None,
                "total_requested_enrichments": len(details),
                "unique_enriched_records": paid,
                "missing_records": len(details) - paid,
                "credits_consumed": credits,
                "matches": matches,
            },
            rate_headers,
        )

    def _key_ok(self, api_key: str) -> bool:
        if not api_key:
            return False
        return self.api_keys is None or api_key in self.api_keys

    def _take_rate_slot(self, api_key: str) -> dict[str, str]:
        limit = self.rate_limit_per_minute
        if not limit:
            return {}
        now = self.clock()
        window = int(now // 60)
        bucket = hashlib.sha256(api_key.encode()).hexdigest()  # limits are per account
        with self._lock:
            current, used = self._windows.get(bucket, (window, 0))
            if current != window:
                used = 0
            if used >= limit:
                self._windows[bucket] = (window, used)
                retry_after = max(1, math.ceil((window + 1) * 60 - now))
                limited = True
            else:
                used += 1
                self._windows[bucket] = (window, used)
                limited = False
        headers = {
            "x-rate-limit-minute": str(limit),
            "x-minute-requests-left": str(max(0, limit - used)),
        }
        if limited:
            self.requests._bump("_rate_limited")
            raise _Reply(
                429,
                {
                    "error": "The maximum number of api calls allowed for "
                    "api/v1/people/match is 1 times per minute. "
                    "Please upgrade your plan",
                    "code": "rate_limit_exceeded",
                },
                {**headers, "Retry-After": str(retry_after)},
            )
        return headers

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _apply_fault(self, h: _Handler, fault: _Fault, endpoint: str) -> None:
        kind = fault.kind
        if kind == "malformed":
            return
        if kind == "429":
            self.requests._bump("_rate_limited")
            seconds = 1 if fault.arg is None else fault.arg
            raise _Reply(
                429,
                {"error": "rate limit exceeded", "code": "rate_limit_exceeded"},
                {"Retry-After": f"{seconds:g}"},
            )
        if kind.isdigit():
            raise _Reply(int(kind), {"error": f"sandbox injected HTTP {kind}"})
        if kind == "timeout":
            # Sleep past the client's timeout, then hang up without answering.
            self._stopping.wait(self.timeout_fault_seconds if fault.arg is None else fault.arg)
            h.close_connection = True
            raise _Abort
        if kind == "reset":
            self._reset_connection(h)
            raise _Abort
        if kind == "html":
            page = (
                b"<!DOCTYPE html><html><head><title>Maintenance</title></head>"
                b"<body><h1>We'll be right back</h1></body></html>"
            )
            self._send_raw(h, 200, page, {"Content-Type": "text/html; charset=utf-8"})
            raise _Abort
        if kind == "redirect":
            location = self.redirect_to + endpoint
            self._send_raw(h, 302, b"", {"Location": location})
            raise _Abort
        raise AssertionError(kind)  # _parse_fault admits nothing else

    @staticmethod
    def _reset_connection(h: _Handler) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        with contextlib.suppress(OSError):
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket only really closes once its makefile() streams are closed; swap in
        # dummies so http.server's own flush/close afterwards has nothing left to touch.
        for stream in (h.rfile, h.wfile):
            with contextlib.suppress(OSError):
                stream.close()
        with contextlib.suppress(OSError):
            h.connection.close()
        h.rfile, h.wfile = io.BytesIO(), io.BytesIO()
        h.close_connection = True

    @staticmethod
    def _send_raw(h: _Handler, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
        try:
            h.send_response(status)
            for name, value in headers.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True

    @staticmethod
    def _send_json(
        h: _Handler, status: int, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> None:
        payload = json.dumps(body).encode()
        SandboxApollo._send_raw(
            h, status, payload, {"Content-Type": "application/json; charset=utf-8", **headers}
        )


class _Abort(Exception):
    """The response was already handled (or deliberately withheld)."""


_INVALID: Final = object()


# ---------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outreach_core.sandbox.apollo",
        description="Serve a fake Apollo API until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=DEFAULT_RATE_LIMIT_PER_MINUTE,
        help="requests per minute (0: unlimited)",
    )
    parser.add_argument("--match-rate", type=float, default=0.8)
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        help=f"queue a fault (repeatable): {', '.join(FAULT_KINDS)}",
    )
    args = parser.parse_args(argv)

    with SandboxApollo(
        host=args.host,
        port=args.port,
        latency=args.latency,
        rate_limit_per_minute=args.rate_limit,
        match_rate=args.match_rate,
        faults=args.fault,
    ) as sandbox:
        serve_until_stopped(sandbox.base_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
