"""Runtime configuration, read from the environment (see DESIGN.md, Configuration)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTREACH_", extra="ignore")

    home: Path = Path(".outreach")
    # None means: the embedded PostgreSQL under `home`.
    database_url: SecretStr | None = None
    # Role the application connects as; it owns nothing and cannot bypass RLS. A deployment
    # can give serving processes only OUTREACH_APP_DATABASE_URL, never the owner's URL.
    app_database_url: SecretStr | None = None
    app_db_role: str = "outreach_app"
    # Dagster's own storage (runs, sensor cursors, partitions). None means a database named
    # after the application's with a `_dagster` suffix on the same server, so two
    # deployments on one server never share runs.
    dagster_database_url: SecretStr | None = None
    app_db_password: SecretStr | None = None
    datalake_url: str | None = None
    provider_mode: Literal["sandbox", "live"] = "sandbox"
    public_base_url: str = "http://127.0.0.1:8000"
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    # Rows read and validated at a time: peak memory follows it (~0.45 GB per 100k rows).
    ingest_chunk_rows: int = Field(default=100_000, gt=0)
    # Rows merged into leads per transaction (split across two writers).
    lead_batch_rows: int = Field(default=200_000, gt=0)
    # Concurrent connections writing one load's batches (PostgreSQL is the bottleneck).
    lead_writers: int = Field(default=2, ge=1, le=8)
    # The upload queue (see README, "How uploads flow"). Uploads of one team x sector that
    # wait together go into one run, up to this many.
    uploads_per_run: int = Field(default=20, ge=1, le=200)
    # Ingest runs one team may have queued or running at once, so one team's flood of
    # uploads never fills the run queue ahead of another team's.
    ingest_runs_per_team: int = Field(default=2, ge=1)
    # Runs at once: ingestion and enrichment have their own slots, so a long enrichment
    # (paced for minutes by the provider's limits) never holds back an upload.
    ingest_concurrency: int = Field(default=2, ge=1)
    enrich_concurrency: int = Field(default=1, ge=1)
    # Campaign send runs at once (each campaign has at most one).
    send_concurrency: int = Field(default=2, ge=1)
    # A `processing` upload whose run stopped renewing its lease for this long, or a
    # `received` one with no live run for its partition for this long, is requeued by the
    # watchdog; a processing upload is failed instead once it has had `upload_max_attempts`.
    upload_stale_after_seconds: int = Field(default=300, ge=10)
    upload_max_attempts: int = Field(default=3, ge=1)
    # Enrichment of a partition waits until its ingestion has been quiet this long (no
    # ingest run live or just finished), so one user's uploads in a row cost one enrichment
    # run and their ingestion, which someone is waiting for, keeps the CPU; it never waits
    # longer than the maximum.
    enrich_settle_seconds: float = Field(default=30, ge=0)
    enrich_max_deferral_seconds: float = Field(default=300, ge=0)

    # SMS sending (see README, "Campaigns"). Messages a second per sending number: a US
    # 10DLC long code is allowed about 1; a short code or a Messaging Service more.
    sms_per_number_per_second: float = Field(default=1.0, gt=0, le=500)
    sms_number_daily_limit: int = Field(default=2_000, ge=1)
    # Messages to one phone in any 24 h, across campaigns (state rules may allow fewer).
    sms_per_lead_per_24h: int = Field(default=3, ge=1)
    # Provider calls for one message before it is failed (retryable errors only).
    sms_max_attempts: int = Field(default=3, ge=1, le=10)
    # Messages claimed at a time by a send run (each still checked just before its call).
    sms_batch_size: int = Field(default=50, ge=1, le=1_000)
    # Reserved per segment before the provider names the price (a budget never overshoots).
    sms_worst_case_price_per_segment: Decimal = Field(default=Decimal("0.02"), ge=0)
    # Carrier-filtered messages (30007) in a campaign's last 24 h that pause it.
    sms_carrier_filter_alarm: int = Field(default=5, ge=1)

    # Quiet-hours rules replacing the packaged `guardrails/quiet_hours.yaml` (same format):
    # an operator's own sending window and state rules.
    quiet_hours_file: Path | None = None

    # Inbound replies (see README, "Replies"). Auto-replies to one conversation in any 24 h.
    auto_replies_per_conversation_per_24h: int = Field(default=3, ge=0)
    # An inbound message still `received` this long after it arrived (its webhook died
    # mid-processing) is processed again by the replies sensor, at most this many times.
    inbound_retry_after_seconds: float = Field(default=60, ge=1)
    inbound_max_attempts: int = Field(default=5, ge=1)
    # Inbound SMS webhooks one API worker processes whole while Twilio waits (answering a
    # confident reply with TwiML). Past this many in flight on a worker (a burst), a webhook
    # stores and classifies the message (suppressing an opt-out at once), answers
    # empty, and leaves the rest to the replies run, whose answers go out through the outbox.
    # 0: always the latter.
    webhook_inline_max_in_flight: int = Field(default=4, ge=0)
    # An OpenAI-compatible chat-completions endpoint drafting replies; unset: templates only.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=5.0, gt=0)

    # Follow-up workflows (outreach_core/workflows/defaults.yaml). Follow-up messages (SMS and
    # email) one lead gets from workflows, ever; the next is refused (skipped with the reason).
    followups_per_lead: int = Field(default=3, ge=0)
    # Workflow executions one team runs a minute, across its workflows (PgRateLimiter).
    followups_per_team_per_minute: int = Field(default=60, ge=1)
    # How often the workflow sensor evaluates triggers and launches runs for due executions.
    workflow_tick_seconds: int = Field(default=60, ge=1)
    # An execution left `running` this long (its run died mid-step) is run again; its
    # actions are idempotent per execution.
    workflow_stale_seconds: float = Field(default=600, ge=1)
    # Tries of a step whose action failed for a passing reason (an SMTP timeout).
    workflow_max_attempts: int = Field(default=3, ge=1)

    # Email deliverables (an email capture's report) go out over SMTP; `outreach dev` and
    # the demo point these at the sandbox SMTP server.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_sender: str = "Outreach <deliverables@outreach.example>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    deliverable_max_attempts: int = Field(default=5, ge=1)
    # A deliverable `sending` for longer (its run died mid-call) is tried again.
    deliverable_stale_seconds: float = Field(default=600, ge=1)

    # Budget alerts (outreach_core.costs.alerts): the team is told once when a budget's spend
    # reaches each of these percentages of its cap; at 100 its campaigns pause.
    budget_alert_thresholds_pct: tuple[Annotated[int, Field(ge=1, le=100)], ...] = (80, 100)

    # Team notifications (outreach_core.notify.deliver), posted to the team's incoming-webhook
    # URL: the POST's timeout, tries before one is failed, the wait before the first retry
    # (doubling with each), and the age at which a `sending` claim (its run died) is tried
    # again; notification runs at once.
    notify_timeout_s: float = Field(default=10.0, gt=0)
    notify_max_attempts: int = Field(default=5, ge=1)
    notify_retry_seconds: float = Field(default=30, ge=0)
    notify_stale_seconds: float = Field(default=120, ge=1)
    notify_concurrency: int = Field(default=1, ge=1)

    # The API's shield (outreach_api.limits), per process: requests a second and bursts per
    # API key and per source address; invalid API keys from one address within the window
    # before it is locked out for the window; the body cap of every route but uploads.
    api_rate_per_key: float = Field(default=50.0, gt=0)
    api_burst_per_key: int = Field(default=100, ge=1)
    api_rate_per_address: float = Field(default=100.0, gt=0)
    api_burst_per_address: int = Field(default=200, ge=1)
    api_failed_auth_limit: int = Field(default=10, ge=1)
    api_failed_auth_window_seconds: float = Field(default=60.0, gt=0)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=0)
    # Never limited per address: loopback, where a local proxy or the benchmarks call from.
    api_rate_exempt_addresses: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    # Proxies whose X-Forwarded-For names the caller.
    api_trusted_proxies: frozenset[str] = frozenset()

    # Provider credentials are not OUTREACH_-prefixed: they keep their vendors' names.
    twilio_account_sid: SecretStr | None = Field(
        default=None, validation_alias="TWILIO_ACCOUNT_SID"
    )
    twilio_auth_token: SecretStr | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN")
    # Set by `outreach dev` and the tests to the sandbox Twilio; unset means Twilio itself.
    twilio_base_url: str | None = Field(default=None, validation_alias="TWILIO_BASE_URL")
    apollo_api_key: SecretStr | None = Field(default=None, validation_alias="APOLLO_API_KEY")
    apollo_base_url: str = Field(
        default="https://api.apollo.io", validation_alias="APOLLO_BASE_URL"
    )

    @model_validator(mode="after")
    def _live_needs_secrets(self) -> Settings:
        # Fail at start-up, not at the first paid call.
        if self.provider_mode == "live":
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                    ("APOLLO_API_KEY", self.apollo_api_key),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"live provider mode needs {', '.join(missing)}")
        return self

    @property
    def resolved_datalake_url(self) -> str:
        return self.datalake_url or str((self.home / "datalake").resolve())

    @property
    def dagster_home(self) -> Path:
        return (self.home / "dagster").resolve()


@cache
def get_settings() -> Settings:
    return Settings()
